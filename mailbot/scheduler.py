"""All periodic work of the daemon under one APScheduler scheduler, whose jobs live in the
database (table apscheduler_jobs), so a restart keeps each job's next run time: a weekly
digest whose minute passed while the robot was down runs as a misfire when it comes back.

| job              | when                         | what                                        |
|------------------|------------------------------|---------------------------------------------|
| mailbox-poll     | every poll_interval seconds  | wake the readers of mailboxes without IDLE  |
| outbox-retry     | every 10 seconds             | wake the sender when a retry falls due      |
| reminders        | every 5 minutes              | review chasers, campaign reminders, and a   |
|                  |                              | digest whose scheduled run failed           |
| weekly-digest    | cron, digest.day digest.time | the leaders' digest (claimed once per week) |

A persistent job refers to its function by name, so the functions here find the running
daemon's Runtime through `_runtime`, set by `start()`. Several workers may share the job
table; what a job does is claimed in the database (digest_run, campaign_reminder …), so
a job run by two workers still sends once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text

from . import outbox

log = logging.getLogger("mailbot.scheduler")
TABLE = "apscheduler_jobs"
NAMES = {"mailbox-poll": "轮询邮箱", "outbox-retry": "重发邮件", "reminders": "审核与报表提醒",
         "weekly-digest": "领导周报"}
_runtime = None


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str  # textual reference, as the job store keeps it
    trigger: object
    grace: int  # seconds a missed run is still run (misfire_grace_time)


def specs(settings) -> list[JobSpec]:
    found = [JobSpec("mailbox-poll", "mailbot.scheduler:poll_mailboxes",
                     IntervalTrigger(seconds=settings.poll_interval, timezone=settings.tz), 30),
             JobSpec("outbox-retry", "mailbot.scheduler:retry_outbox", IntervalTrigger(seconds=10, timezone=settings.tz), 30),
             JobSpec("reminders", "mailbot.scheduler:send_reminders", IntervalTrigger(minutes=5, timezone=settings.tz), 300)]
    if settings.digest.enabled:
        hour, minute = settings.digest.time.split(":")
        found.append(JobSpec("weekly-digest", "mailbot.scheduler:weekly_digest",
                             CronTrigger(day_of_week=settings.digest.day, hour=int(hour), minute=int(minute),
                                         timezone=settings.tz),
                             int(timedelta(days=settings.digest.late_limit_days, hours=1).total_seconds())))
    return found


def start(rt) -> AsyncIOScheduler:
    """Start the scheduler in the running event loop with the configured jobs."""
    global _runtime
    _runtime = rt
    scheduler = AsyncIOScheduler(jobstores={"default": SQLAlchemyJobStore(engine=rt.engine, tablename=TABLE)},
                                 timezone=rt.settings.tz,
                                 job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.start(paused=True)
    install(scheduler, specs(rt.settings))
    scheduler.resume()
    return scheduler


def install(scheduler, wanted: list[JobSpec]) -> None:
    """Make the stored jobs match the configuration. A cron job whose trigger is unchanged is
    kept as stored, so its next run time (perhaps in the past: a missed digest) survives."""
    ids = {spec.id for spec in wanted}
    for job in scheduler.get_jobs():
        if job.id not in ids:
            job.remove()
    for spec in wanted:
        job = scheduler.get_job(spec.id)
        if job is not None and job.func_ref == spec.func and repr(job.trigger) == repr(spec.trigger):
            continue
        scheduler.add_job(spec.func, spec.trigger, id=spec.id, name=NAMES[spec.id], replace_existing=True,
                          misfire_grace_time=spec.grace, coalesce=True, max_instances=1)


def upcoming(engine) -> list[dict]:
    """The stored jobs and their next run (UTC), read from the table: `mailbot status`."""
    from datetime import timezone

    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, next_run_time FROM {TABLE} ORDER BY next_run_time")).all()
    except Exception:  # the daemon never ran against this database
        return []
    return [dict(id=job_id, name=NAMES.get(job_id, job_id),
                 next_run_at=datetime.fromtimestamp(ts, timezone.utc) if ts is not None else None)
            for job_id, ts in rows]


# --- the jobs ---------------------------------------------------------------------------


def poll_mailboxes() -> None:
    _runtime.poke()


def retry_outbox() -> None:
    try:
        due = outbox.next_due(_runtime.engine)
    except Exception as exc:  # the database is away: the sender retries on its own
        log.warning("outbox-retry: cannot read the outbox (%s)", exc.__class__.__name__)
        return
    if due is not None and due <= outbox.utcnow():
        _runtime.mail_due.set()


def send_reminders() -> None:
    _runtime.chase()
    _runtime.catch_up()  # a digest whose scheduled run failed (database away at 08:00) goes out now


def weekly_digest() -> None:
    _runtime.digest(trigger="schedule")
