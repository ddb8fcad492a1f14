"""The digest's calendar as a table of cases (tests/cases/digest.yaml): which week a
moment reports, when its digest was due, whether sending now is late; and the period
named by an ISO week is the same period."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from mailbot.config import Digest
from mailbot.digest import current_period, is_late, next_run, period_by_key, period_for

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "digest.yaml").read_text("utf-8"))
TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_period(case):
    cfg = Digest(day=case["day"], time=case["time"])
    now = datetime.fromisoformat(case["now"])
    period = period_for(now, cfg, TZ)
    got = [period.key, period.first_day.isoformat(), period.last_day.isoformat(),
           period.scheduled_at.astimezone(TZ).isoformat()]
    assert got == case["expect"]
    assert is_late(period, now) is case["late"]
    assert period.starts_at.astimezone(TZ).date() == period.first_day
    assert (period.ends_at - period.starts_at).days == 7
    assert period_by_key(period.key, cfg, TZ) == period
    assert period.scheduled_at <= now < next_run(now, cfg, TZ)


CURRENT = yaml.safe_load((Path(__file__).parents[1] / "cases" / "digest_current.yaml").read_text("utf-8"))


@pytest.mark.parametrize("case", CURRENT, ids=[c["name"] for c in CURRENT])
def test_current_period_holds_the_moment(case):
    cfg = Digest(day=case["day"], time=case["time"])
    now = datetime.fromisoformat(case["now"])
    period = current_period(now, cfg, TZ)
    assert [period.first_day.isoformat(), period.last_day.isoformat()] == case["expect"]
    assert period.starts_at <= now < period.ends_at
