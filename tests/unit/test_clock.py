"""The one clock: MAILBOT_NOW values as a table, and what set/advance/freeze do."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailbot.clock import Clock, ClockError, parse_env

CHINA = timezone(timedelta(hours=8))
UTC = timezone.utc

CASES = [
    ("2026-12-06T23:59:00+08:00", datetime(2026, 12, 6, 15, 59, tzinfo=UTC), None),
    ("2026-12-06T15:59:00Z", datetime(2026, 12, 6, 15, 59, tzinfo=UTC), None),
    ("2026-12-06T15:59:00", datetime(2026, 12, 6, 15, 59, tzinfo=UTC), None),  # no zone: UTC
    ("2027-01-01T00:01:00+08:00@1796000000.25", datetime(2026, 12, 31, 16, 1, tzinfo=UTC), 1796000000.25),
    (" 2026-02-14T10:00+08:00 ", datetime(2026, 2, 14, 2, 0, tzinfo=UTC), None),
]
BAD = ["tomorrow", "2026-13-01T00:00:00", "2026-12-06T23:59:00+08:00@soon", "12月20日"]


@pytest.mark.parametrize("value, moment, real_at", CASES)
def test_mailbot_now_values(value, moment, real_at):
    assert parse_env(value) == (moment, real_at)


@pytest.mark.parametrize("value", BAD)
def test_mailbot_now_that_is_no_moment_is_refused(value):
    with pytest.raises(ClockError):
        parse_env(value)


def test_set_frozen_advance_and_reset():
    c = Clock()
    moment = datetime(2026, 12, 31, 23, 59, tzinfo=CHINA)
    c.set(moment, frozen=True)
    assert c.now() == moment and c.now().tzinfo == UTC
    c.advance(timedelta(minutes=2))
    assert c.today(CHINA).isoformat() == "2027-01-01"
    c.set(moment)  # ticking from the moment
    assert timedelta(0) <= c.now() - moment < timedelta(seconds=5)
    c.reset()
    assert not c.shifted and c.now().year >= 2026


def test_a_child_process_shares_the_clock_to_the_second():
    parent = Clock()
    parent.set(datetime(2026, 12, 6, 23, 59, tzinfo=CHINA))
    child = Clock()
    child.load_env({"MAILBOT_NOW": parent.env_value()})
    assert abs(child.now() - parent.now()) < timedelta(milliseconds=50)
