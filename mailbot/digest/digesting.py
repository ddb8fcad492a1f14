"""Sending the weekly digest: claim the period once, build each scope's digest from SQL
aggregates, and put one message per recipient in the outbox, all in one transaction.

The claim is a unique row per period (digest_run), so the digest is sent once whoever
asks (the scheduled job, the catch-up after downtime, a second worker, the operator);
a digest sent more than a few minutes after its minute is marked late (补发).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from mailbot import digest, outbox
from mailbot.digest import Period, stats
from mailbot.store import DigestRun, InboundMessage, MailboxState, log_event

log = logging.getLogger("mailbot.digest")
CHART_CID = "chart@mailbot"


@dataclass(frozen=True)
class Recipient:
    name: str
    address: str
    department: str | None  # None: the whole office (主要领导)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    chart: bytes
    workbook: bytes
    content: dict
    attachment_name: str
    chart_src: str | None = None

    def greeting(self, greeting: str | None) -> "Rendered":
        """The same digest (same numbers, chart and workbook) addressed to someone else."""
        subject, text, html = outbox.render("digest", **self.content, greeting=greeting, chart_src=self.chart_src,
                                            attachment_name=self.attachment_name)
        return Rendered(subject, text, html, self.chart, self.workbook, self.content, self.attachment_name,
                        self.chart_src)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | already-sent | not-due | too-late | disabled | no-recipients
    period: Period | None
    late: bool = False
    recipients: int = 0
    message: str = ""


def recipients(settings) -> list[Recipient]:
    """Leaders get the whole office; each department's list gets that department's part."""
    people = {r.key: r for r in settings.reviewers}

    def expand(items, dept):
        for item in items:
            if "@" in item:
                yield Recipient("", item.strip().lower(), dept)
            elif item in people:
                yield Recipient(people[item].name, people[item].addresses[0].lower(), dept)

    found = [*expand(settings.digest.leaders, None)]
    for dept, items in settings.digest.departments.items():
        found += expand(items, dept)
    seen, unique = set(), []
    for r in found:
        if (r.address, r.department) not in seen:
            seen.add((r.address, r.department))
            unique.append(r)
    return unique


def render(session: Session, settings, period: Period, now: datetime, department: str | None = None,
           late: bool = False, greeting: str | None = None, inline_chart: bool = False) -> Rendered:
    """One scope's digest. The chart is a cid: image in mail, a data: URI in a preview file;
    no `greeting`: the template's (各位领导)."""
    snap = stats.snapshot(session, settings, period.starts_at, period.ends_at, department,
                          weeks=settings.digest.weeks_in_chart)
    content = digest.build(snap, period, settings, now, late=late)
    try:
        chart = digest.chart_png(content)
    except Exception:  # a broken font or plotting library: the digest goes out without its chart
        log.exception("digest %s: the chart could not be drawn; sending without it", period.key)
        chart = b""
    src = None
    if chart:
        src = f"data:image/png;base64,{base64.b64encode(chart).decode()}" if inline_chart else f"cid:{CHART_CID}"
    name = f"周报明细-{period.key}" + (f"-{content['scope']}" if content["scope"] else "") + ".xlsx"
    return Rendered("", "", "", chart, digest.workbook(content, snap, settings), content, name, src).greeting(greeting)


def send_digest(engine, settings, now: datetime, trigger: str = "schedule", period: Period | None = None) -> Outcome:
    """Claim the period and queue the digest for every recipient (caller drains the outbox)."""
    cfg = settings.digest
    if not cfg.enabled and trigger != "operator":
        return Outcome("disabled", None, message="配置中已关闭周报（digest.enabled: false）")
    period = period or digest.period_for(now, cfg, settings.tz)
    if now < period.scheduled_at and trigger != "operator":
        return Outcome("not-due", period, message="本期周报还没到发送时间")
    late = digest.is_late(period, now) and trigger != "operator"
    if late and now - period.scheduled_at > timedelta(days=cfg.late_limit_days, hours=1):
        return Outcome("too-late", period, message="错过发送时间太久，本期周报不再补发")
    people = recipients(settings)
    if not people:
        return Outcome("no-recipients", period, message="配置中没有周报收件人（digest.leaders / digest.departments）")
    with Session(engine) as session:
        if not _claim(session, period, now, late, len(people), trigger):
            return Outcome("already-sent", period, message=f"{period.key} 的周报已经发送过，不会重复发送")
        _queue(session, settings, period, now, late, people)
        log_event(session, "digest-sent", f"{period.key} to {len(people)} recipient(s)" + (" (late)" if late else ""),
                  actor=trigger)
        session.commit()
    log.info("weekly digest %s queued for %d recipient(s)%s", period.key, len(people), " (late)" if late else "")
    return Outcome("sent", period, late, len(people), f"{period.key} 的周报已交给发件队列，共 {len(people)} 位收件人")


def _claim(session: Session, period: Period, now: datetime, late: bool, count: int, trigger: str) -> bool:
    try:
        with session.begin_nested():
            session.add(DigestRun(period=period.key, starts_at=period.starts_at, ends_at=period.ends_at,
                                  scheduled_at=period.scheduled_at, late=late, recipients=count, trigger=trigger,
                                  created_at=now))
        return True
    except IntegrityError:
        return False


def _queue(session: Session, settings, period: Period, now: datetime, late: bool, people: list[Recipient]) -> None:
    box = settings.mailbox(settings.digest.mailbox) if settings.digest.mailbox else settings.mailboxes[0]
    by_scope: dict[str | None, Rendered] = {}
    for person in people:
        if person.department not in by_scope:
            by_scope[person.department] = render(session, settings, period, now, person.department, late)
        r = by_scope[person.department]
        out = outbox.letter(
            "digest", settings=settings, mailbox=box.name, to=person.address, to_name=person.name, now=now,
            tag=period.key, attachments=((r.attachment_name, r.workbook,
                                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),),
            related=((CHART_CID, r.chart, "image/png"),) if r.chart else (),
            **r.content, greeting=person.name or None, chart_src=r.chart_src, attachment_name=r.attachment_name)
        outbox.enqueue(session, out, settings.outbox, now)


def catch_up(engine, settings, now: datetime) -> Outcome | None:
    """Send the latest period's digest if its minute passed while the robot was down.

    Only when the robot was already in service before that minute (it had received mail or
    talked to a mailbox), so a fresh installation does not open with last week's digest."""
    if not settings.digest.enabled or not recipients(settings):
        return None
    period = digest.period_for(now, settings.digest, settings.tz)
    with Session(engine) as session:
        done = session.exec(select(DigestRun.id).where(DigestRun.period == period.key)).first()
        in_service = session.exec(select(func.count()).select_from(InboundMessage).where(
            InboundMessage.received_at < period.scheduled_at)).one() or session.exec(
            select(func.count()).select_from(MailboxState).where(
                MailboxState.last_contact_at < period.scheduled_at)).one()
    if done is not None or not in_service:
        return None
    return send_digest(engine, settings, now, trigger="catch-up", period=period)


def send_if_due(engine, settings, now: datetime) -> Outcome | None:
    """The scheduler's check (every half minute, on the one clock): at the digest's minute
    send it; past it, only as a catch-up (the robot was in service before the minute)."""
    if not settings.digest.enabled:
        return None
    period = digest.period_for(now, settings.digest, settings.tz)
    if not digest.is_late(period, now):
        return send_digest(engine, settings, now, trigger="schedule", period=period)
    return catch_up(engine, settings, now)
