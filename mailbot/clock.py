"""The one clock: the only place in mailbot that reads the wall clock.

Everything that needs "now" (table defaults, filing, reminders, the digest, the outbox,
the command line) asks `CLOCK.now()` or takes a `now` its caller got from it. Tests pin
or move the clock; `MAILBOT_NOW` starts a process at a given moment, from which it ticks
on in real time (the demo and the tests' child processes use it).
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone, tzinfo

ENV = "MAILBOT_NOW"


class ClockError(ValueError):
    """MAILBOT_NOW holds something that is not a moment."""


class Clock:
    """UTC-aware "now". Real time by default; `set()` shifts it to a moment that then
    ticks on (or stands still with `frozen=True`); `advance()` moves it."""

    def __init__(self) -> None:
        self._offset: timedelta | None = None  # shifted: real time + offset
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        real = datetime.now(timezone.utc)
        return real if self._offset is None else real + self._offset

    def today(self, tz: tzinfo) -> date:
        """The local date in `tz` (the office's time zone)."""
        return self.now().astimezone(tz).date()

    def set(self, moment: datetime, frozen: bool = False, real_at: float | None = None) -> None:
        """From now on it is `moment`: standing still (`frozen`) or ticking. `real_at` is the
        real epoch time at which `moment` was "now" (so a child process agrees to the second)."""
        moment = _aware(moment)
        if frozen:
            self._frozen, self._offset = moment, None
            return
        real = datetime.fromtimestamp(real_at if real_at is not None else time.time(), timezone.utc)
        self._frozen, self._offset = None, moment - real

    def advance(self, delta: timedelta) -> None:
        if self._frozen is not None:
            self._frozen += delta
        else:
            self._offset = (self._offset or timedelta(0)) + delta

    def reset(self) -> None:
        """Back to real time."""
        self._frozen = self._offset = None

    @property
    def shifted(self) -> bool:
        return self._frozen is not None or self._offset is not None

    def env_value(self) -> str:
        """What MAILBOT_NOW must hold for a child process to share this clock."""
        return f"{self.now().isoformat()}@{time.time():.6f}"

    def load_env(self, environ=os.environ) -> None:
        """Apply MAILBOT_NOW (`2026-12-06T23:59:00+08:00`, optionally `@<epoch seconds>`)."""
        value = (environ.get(ENV) or "").strip()
        if value:
            moment, real_at = parse_env(value)
            self.set(moment, real_at=real_at)


def parse_env(value: str) -> tuple[datetime, float | None]:
    """`2026-12-06T23:59:00+08:00[@1796000000.5]` → (moment, real epoch or None)."""
    text, _, real = value.partition("@")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        real_at = float(real) if real else None
    except ValueError:
        raise ClockError(f"{ENV}={value!r}") from None
    return _aware(moment), real_at


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:  # a moment without a zone is taken as UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


CLOCK = Clock()


def now() -> datetime:
    """The current moment (UTC), from the one clock."""
    return CLOCK.now()
