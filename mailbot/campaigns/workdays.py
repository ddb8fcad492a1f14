"""Working days by China's official calendar: the State Council's notices the office entered
(config/holidays/<year>.yaml: holidays and 调休 make-up days), else the chinesecalendar
package, plus the office's own closed and extra days. Pure: dates in, counts out.

A year neither knows is taken as Monday–Friday and the caller is told so; `uncovered()`
names such years ahead of time, so the office can enter the notice before they arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

LOOKAHEAD_DAYS = 90  # warn this long before a year without a calendar begins


@dataclass(frozen=True)
class WorkCalendar:
    """What decides a working day beyond the package: the configured notices and the office's
    own days. A year with a configured notice is read from it alone (the package is not asked)."""

    holidays: Mapping[date, str] = field(default_factory=dict)  # day off → holiday name (春节)
    workdays: frozenset[date] = frozenset()  # 调休: weekend days that are worked
    years: frozenset[int] = frozenset()  # years whose notice is configured
    closed: frozenset[date] = frozenset()  # the office's own closed days
    extra: frozenset[date] = frozenset()  # the office's own extra working days


NO_CALENDAR = WorkCalendar()


def office_calendar(settings) -> WorkCalendar:
    """The calendar configured in `settings`: notices (calendar.years, read from
    calendar.holidays_folder) and closed/extra days (calendar.*, and review.* of older configs)."""
    cal, review = settings.calendar, settings.review
    holidays: dict[date, str] = {}
    worked: set[date] = set()
    for notice in cal.years.values():
        for period in notice.holidays:
            day, end = period.start, period.end or period.start
            while day <= end:
                holidays[day] = period.name
                day += timedelta(days=1)
        worked.update(notice.workdays)
    return WorkCalendar(holidays, frozenset(worked), frozenset(cal.years),
                        frozenset([*cal.closed_days, *review.closed_days]),
                        frozenset([*cal.extra_workdays, *review.extra_workdays]))


@lru_cache(maxsize=None)
def package_knows(year: int) -> bool:
    """Whether the chinesecalendar package has the State Council's notice for `year`."""
    import chinese_calendar

    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def uncovered(now: datetime, tz, calendar: WorkCalendar = NO_CALENDAR, days: int = LOOKAHEAD_DAYS) -> list[int]:
    """Years touched by the local dates from `now` to `days` days later that neither a configured
    notice nor the package knows: their working days would be guessed as Monday–Friday."""
    first = now.astimezone(tz).date()
    last = first + timedelta(days=days)
    return [year for year in range(first.year, last.year + 1)
            if year not in calendar.years and not package_knows(year)]


def uncovered_message(year: int, folder) -> str:
    """The operator's warning for a year without a calendar (check-config, status)."""
    return (f"{year}年的节假日安排尚未录入，提醒按周一至周五计算；"
            f"请按国务院通知在 {Path(folder) / f'{year}.yaml'} 中录入。")


def calendar_gaps(settings, now: datetime) -> list[dict]:
    """For check-config, status and the digest: each year of the next 90 days without a calendar,
    with the file to write and the warning."""
    folder = settings.calendar.holidays_folder or Path("config/holidays")
    return [dict(year=year, file=str(Path(folder) / f"{year}.yaml"), message=uncovered_message(year, folder))
            for year in uncovered(now, settings.tz, office_calendar(settings))]


def is_workday(day: date, closed: frozenset[date] = frozenset(), extra: frozenset[date] = frozenset(),
               calendar: WorkCalendar = NO_CALENDAR) -> tuple[bool, bool]:
    """(is it a working day, did an official calendar know the year): the office's own days,
    then a configured notice, then the package, else Monday–Friday."""
    if day in closed or day in calendar.closed:
        return False, True
    if day in extra or day in calendar.extra:
        return True, True
    if day in calendar.holidays:
        return False, True
    if day in calendar.workdays:
        return True, True
    if day.year in calendar.years:
        return day.weekday() < 5, True
    if not package_knows(day.year):
        return day.weekday() < 5, False
    import chinese_calendar

    return chinese_calendar.is_workday(day), True


def working_days_between(start: datetime, end: datetime, tz, closed=frozenset(), extra=frozenset(),
                         calendar: WorkCalendar = NO_CALENDAR) -> tuple[int, bool]:
    """Whole working days from `start` to `end` in local time (the start day not counted).
    Returns (days, whether every year was in an official calendar)."""
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    days, known = 0, True
    day = first + timedelta(days=1)
    while day <= last:
        work, ok = is_workday(day, closed, extra, calendar)
        days += work
        known = known and ok
        day += timedelta(days=1)
    return days, known


def in_office_hours(now: datetime, tz, hours: str = "08:30-17:30", closed=frozenset(), extra=frozenset(),
                    calendar: WorkCalendar = NO_CALENDAR) -> bool:
    """Mail to people (reminders, escalations) goes out on working days in office hours."""
    local = now.astimezone(tz)
    start, end = hours.split("-")
    hm = local.strftime("%H:%M")
    return is_workday(local.date(), closed, extra, calendar)[0] and start <= hm < end
