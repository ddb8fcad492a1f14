"""Working days by China's calendar, and when reminders may go out."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from mailbot.campaigns.workdays import in_office_hours, working_days_between
from mailbot.review import chase_action

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "workdays.yaml").read_text("utf-8"))
TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_working_days(case):
    closed = frozenset(date.fromisoformat(d) for d in case.get("closed", []))
    days, known = working_days_between(datetime.fromisoformat(case["start"]), datetime.fromisoformat(case["end"]),
                                       TZ, closed)
    assert (days, known) == (case["days"], case["known"])


@pytest.mark.parametrize("when,expect", [
    ("2026-11-23T08:29:00+08:00", False), ("2026-11-23T08:30:00+08:00", True), ("2026-11-23T17:29:00+08:00", True),
    ("2026-11-23T17:30:00+08:00", False), ("2026-11-22T10:00:00+08:00", False),  # a Sunday
    ("2026-10-10T10:00:00+08:00", True),  # a 调休 Saturday is a working day
    ("2026-10-02T10:00:00+08:00", False),  # national day
])
def test_office_hours(when, expect):
    assert in_office_hours(datetime.fromisoformat(when), TZ) is expect


@pytest.mark.parametrize("waiting,since,escalated,expect", [
    (1, None, False, None), (2, None, False, "chase"), (5, 1, False, None), (5, 2, False, "escalate"),
    (9, 6, True, None),
])
def test_chase_action(waiting, since, escalated, expect):
    assert chase_action(waiting, since, escalated, 2, 2) == expect
