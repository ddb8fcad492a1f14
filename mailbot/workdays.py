"""Working days by China's official calendar (holidays and 调休 make-up days, from the
chinesecalendar package), plus the office's own closed days. Pure: dates in, counts out.

Beyond the years the package knows, Monday–Friday is assumed and the caller is told so.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta


def is_workday(day: date, closed: frozenset[date] = frozenset(), extra: frozenset[date] = frozenset()) -> tuple[bool, bool]:
    """(is it a working day, did the official calendar know the year)."""
    if day in closed:
        return False, True
    if day in extra:
        return True, True
    import chinese_calendar

    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:
        return day.weekday() < 5, False


def working_days_between(start: datetime, end: datetime, tz, closed=frozenset(), extra=frozenset()) -> tuple[int, bool]:
    """Whole working days from `start` to `end` in local time (the start day not counted).
    Returns (days, whether every year was in the official calendar)."""
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    days, known = 0, True
    day = first + timedelta(days=1)
    while day <= last:
        work, ok = is_workday(day, closed, extra)
        days += work
        known = known and ok
        day += timedelta(days=1)
    return days, known


def in_office_hours(now: datetime, tz, hours: str = "08:30-17:30", closed=frozenset(), extra=frozenset()) -> bool:
    """Mail to people (reminders, escalations) goes out on working days in office hours."""
    local = now.astimezone(tz)
    start, end = hours.split("-")
    hm = local.strftime("%H:%M")
    return is_workday(local.date(), closed, extra)[0] and start <= hm < end
