"""Campaign deadlines, the pure part: who is in an audience, when a form counts as on time,
and which reminders are due now (campaigns × returns × reminders sent × now → reminders).

Deadlines are dates in the office's time zone: "12月20日前" ends at 12-20 00:00 local time,
"12月20日当日" at the end of that day; which one is the campaign's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta


@dataclass(frozen=True)
class Due:
    campaign: str
    audience: str
    unit: str
    offset: int  # days before the deadline (negative: after it)
    deadline: date


def audience_units(audience, units) -> list[str]:
    """Roster names in an audience: listed by name, or every unit of its categories."""
    names = [u.name for u in units if u.name in audience.units or u.category in audience.categories]
    return list(dict.fromkeys([*[n for n in audience.units if n in {u.name for u in units}], *names]))


def closes_at(deadline: date, inclusive: bool, tz) -> datetime:
    """The moment a deadline passes, in the office's zone."""
    day = deadline + timedelta(days=1) if inclusive else deadline
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def on_time(received: datetime, deadline: date, inclusive: bool, tz) -> bool:
    return received < closes_at(deadline, inclusive, tz)


def reminder_day(deadline: date, offset: int, workday=None) -> date:
    """The day an offset's reminder goes out: `offset` days before the deadline, or, when
    that is not a working day, the working day before it (a reminder due on a Saturday
    goes on Friday rather than after the weekend, when it may be too late)."""
    day = deadline - timedelta(days=offset)
    if workday is None:
        return day
    for back in range(15):
        if workday(day - timedelta(days=back)):
            return day - timedelta(days=back)
    return day


def due_reminders(campaign, units, returned: set[str], sent: set[tuple[str, int]], now: datetime, tz,
                  workday=None) -> list[Due]:
    """Reminders due at `now`: for each offset whose day has come (the latest one only, so
    a robot that was down does not send a burst), each unit without a valid form that has
    not had that offset's reminder. Offsets after the deadline are for the operator list."""
    today = now.astimezone(tz).date()
    out = []
    for audience in campaign.audiences:
        reached = [o for o in campaign.reminder_offsets
                   if o > 0 and today >= reminder_day(audience.deadline, o, workday)]
        if not reached or now >= closes_at(audience.deadline, audience.inclusive, tz):
            continue
        offset = min(reached)  # the nearest to the deadline among those that have come
        for unit in audience_units(audience, units):
            if unit not in returned and (unit, offset) not in sent:
                out.append(Due(campaign.key, audience.name, unit, offset, audience.deadline))
    return out


def missing_after_deadline(campaign, units, returned: set[str], sent: set[tuple[str, int]], now: datetime,
                           tz) -> list[Due]:
    """Units still missing once a deadline has passed: listed once for the operator (offset -1)."""
    out = []
    for audience in campaign.audiences:
        if now < closes_at(audience.deadline, audience.inclusive, tz):
            continue
        for unit in audience_units(audience, units):
            if unit not in returned and (unit, -1) not in sent:
                out.append(Due(campaign.key, audience.name, unit, -1, audience.deadline))
    return out
