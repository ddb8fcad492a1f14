"""Campaign reminders as a table of cases: who is due, when, and never twice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from mailbot.campaigns.deadlines import (
    closes_at,
    due_reminders,
    missing_after_deadline,
    on_time,
)
from mailbot.campaigns.workdays import is_workday
from mailbot.config import Campaign, Unit

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "deadlines.yaml").read_text("utf-8"))
TZ = ZoneInfo("Asia/Shanghai")
UNITS = [Unit(name="市科技馆", category="科普基地"), Unit(name="市农学会", category="学会"),
         Unit(name="沂水县科协", category="县区科协"), Unit(name="兰山区科协", category="县区科协")]
CAMPAIGN = Campaign(key="bj", name="信息报送", template="信息报送表", department="diaoxuan", reminder_offsets=[7, 3, 1],
                    audiences=[{"name": "市直", "units": ["市科技馆", "市农学会"], "deadline": "2026-10-25"},
                               {"name": "县区", "categories": ["县区科协"], "deadline": "2026-11-05", "inclusive": True}])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_due(case):
    now = datetime.fromisoformat(case["now"])
    sent = {tuple(x) for x in case["sent"]}
    workday = (lambda day: is_workday(day)[0]) if case.get("workdays") == "china" else None
    due = due_reminders(CAMPAIGN, UNITS, set(case["returned"]), sent, now, TZ, workday)
    assert [[d.audience, d.unit, d.offset] for d in due] == case["expect"]
    if "missing" in case:
        missing = missing_after_deadline(CAMPAIGN, UNITS, set(case["returned"]), sent, now, TZ)
        assert [[d.audience, d.unit, d.offset] for d in missing] == case["missing"]


def test_deadline_moments():
    from datetime import date

    assert closes_at(date(2026, 12, 20), False, TZ).isoformat() == "2026-12-20T00:00:00+08:00"
    assert closes_at(date(2026, 12, 20), True, TZ).isoformat() == "2026-12-21T00:00:00+08:00"
    late_evening_utc = datetime.fromisoformat("2026-12-19T16:30:00+00:00")  # 12-20 00:30 in China
    assert not on_time(late_evening_utc, date(2026, 12, 20), False, TZ)
    assert on_time(late_evening_utc, date(2026, 12, 20), True, TZ)
