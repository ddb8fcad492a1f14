"""All periodic work of the daemon under one APScheduler scheduler, in memory.

| job              | every                 | what                                                  |
|------------------|-----------------------|-------------------------------------------------------|
| mailbox-poll     | poll_interval seconds | wake the readers of mailboxes without IDLE            |
| outbox-retry     | 10 seconds            | wake the sender when a retry falls due                |
| reminders        | 5 minutes             | review chasers, campaign reminders, and a digest      |
|                  |                       | whose scheduled run failed                            |
| weekly-digest    | 30 seconds            | the leaders' digest at its minute, or late (补发)      |
| leases           | 5 seconds             | check the lease connection; take the scheduler lease  |

The scheduler only wakes work; what is due is decided by the one clock (mailbot.clock), so
the scheduler's own wall-clock time never picks a date and a test or MAILBOT_NOW moves it
all. Nothing is lost with the jobs at a restart: a missed digest is caught up from
`digest_run`, reminders from their claim rows. Each job is a closure over the daemon's
Runtime (no global); after each run it leaves a heartbeat in `scheduler_job` (at most once
a minute per job) for `mailbot status`. Several workers: the jobs that only wake this worker's
own threads (mailbox-poll, outbox-retry) run in each; the shared ones (reminders, the digest)
only in the worker holding the `scheduler` lease (mailbot.runtime.leases), which the `leases`
job takes over within seconds when its holder dies. What a job does is also claimed in the
database (digest_run, campaign_reminder …), so it happens once even at a handover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, select

from mailbot import digest, outbox
from mailbot.runtime import leases
from mailbot.store import SchedulerJob

log = logging.getLogger("mailbot.scheduler")
NAMES = {"mailbox-poll": "轮询邮箱", "outbox-retry": "重发邮件", "reminders": "审核与报表提醒",
         "weekly-digest": "领导周报", "leases": "多进程分工"}
SHARED = {"reminders", "weekly-digest"}  # run by the worker holding the `scheduler` lease only
BEAT_EVERY = timedelta(minutes=1)
# Every worker's triggers fire in the same phase (multiples of the interval since this moment), so
# when the scheduler lease changes hands, the new holder's next run falls in the next period, never
# twice in one.
PHASE = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a job's heartbeat row is written at most this often


@dataclass(frozen=True)
class JobSpec:
    id: str
    every: float  # seconds
    run: Callable[[], None]
    next_at: Callable[[datetime], datetime]  # what `status` shows as the next run after `now`


def specs(rt) -> list[JobSpec]:
    """The daemon's jobs, each bound to its Runtime."""
    settings = rt.settings

    def every(seconds: float):
        return lambda now: now + timedelta(seconds=seconds)

    found = [JobSpec("mailbox-poll", settings.poll_interval, rt.poke, every(settings.poll_interval)),
             JobSpec("leases", leases.RETRY, lambda: keep_leases(rt), every(leases.RETRY)),
             JobSpec("outbox-retry", 10, lambda: retry_outbox(rt), every(10)),
             JobSpec("reminders", 300, lambda: send_reminders(rt), every(300))]
    if settings.digest.enabled:
        found.append(JobSpec("weekly-digest", 30, rt.digest_due,
                             lambda now: digest.next_run(now, settings.digest, settings.tz)))
    return found


class Heartbeat:
    """Records when each job ran and runs next (throttled), for `status` and health checks."""

    def __init__(self, rt):
        self.rt = rt
        self.written: dict[str, datetime] = {}

    def beat(self, spec: JobSpec, error: str | None = None, force: bool = False) -> None:
        now = self.rt.clock()
        last = self.written.get(spec.id)
        if not force and error is None and last is not None and now - last < BEAT_EVERY:
            return
        try:
            with Session(self.rt.engine) as session:
                row = session.get(SchedulerJob, spec.id) or SchedulerJob(id=spec.id)
                row.last_run_at = None if force else now
                row.next_run_at, row.last_error, row.updated_at = spec.next_at(now), error, now
                session.add(row)
                session.commit()
            self.written[spec.id] = now
        except Exception as exc:  # the database is away: the job itself has run
            log.warning("%s: cannot record the heartbeat (%s)", spec.id, exc.__class__.__name__)

    def wrap(self, spec: JobSpec) -> Callable[[], None]:
        def job() -> None:
            if spec.id in SHARED and self.rt.leases is not None:
                if not self.rt.leases.take("scheduler"):
                    return  # another worker runs the shared jobs
                log.debug("%s: running here (scheduler lease)", spec.id)
            try:
                spec.run()
            except Exception as exc:
                log.exception("%s failed; it runs again in %s s", spec.id, spec.every)
                self.beat(spec, error=exc.__class__.__name__)
                return
            self.beat(spec)

        return job


def start(rt) -> AsyncIOScheduler:
    """Start the scheduler in the running event loop with the configured jobs."""
    scheduler = AsyncIOScheduler(timezone=rt.settings.tz, job_defaults={"coalesce": True, "max_instances": 1})
    heart = Heartbeat(rt)
    for spec in specs(rt):
        trigger = IntervalTrigger(seconds=spec.every, start_date=PHASE, timezone=rt.settings.tz)
        scheduler.add_job(heart.wrap(spec), trigger,
                          id=spec.id, name=NAMES[spec.id], misfire_grace_time=max(30, int(spec.every)))
        heart.beat(spec, force=True)  # known to `status` from the start
    scheduler.start()
    return scheduler


def upcoming(engine) -> list[dict]:
    """The jobs as the daemon last recorded them (next run in UTC): `mailbot status`."""
    from mailbot.models import aware

    with Session(engine) as session:
        rows = session.exec(select(SchedulerJob).order_by(SchedulerJob.next_run_at)).all()
    return [dict(id=r.id, name=NAMES.get(r.id, r.id), next_run_at=aware(r.next_run_at) if r.next_run_at else None,
                 last_run_at=aware(r.last_run_at) if r.last_run_at else None, last_error=r.last_error)
            for r in rows]


# --- the jobs ---------------------------------------------------------------------------


def retry_outbox(rt) -> None:
    try:
        due = outbox.next_due(rt.engine)
    except Exception as exc:  # the database is away: the sender retries on its own
        log.warning("outbox-retry: cannot read the outbox (%s)", exc.__class__.__name__)
        return
    if due is not None and due <= rt.clock():
        rt.mail_due.set()


def keep_leases(rt) -> None:
    """Notice a lost lease connection; take the scheduler lease when its holder is gone."""
    if rt.leases is not None:
        rt.leases.check()
        rt.leases.take("scheduler")


def send_reminders(rt) -> None:
    rt.chase()
    rt.watch()  # operator alerts: mailboxes down, sending failing, the daily 待处理 summary
    rt.catch_up()  # a digest whose scheduled run failed (database away at 08:00) goes out now
