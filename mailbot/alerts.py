"""Operator alerts: a mail at once to `operators:` when a mailbox cannot log in or connect,
sending has failed for a while, a message was quarantined or needs a person, a reply is
held, or a 超大附件 link could not be fetched; and a daily 待处理 summary.

Each condition has a key (`mailbox-down:skxkpb`, `inbound:42` …) and one `operator_alert`
row: the same key is mailed again only after `alerts.repeat_hours` (deduplicated), and no
more than `alerts.max_per_hour` alert mails leave in an hour (rate-limited; the rest wait for
the summary). Everything goes through the outbox, in the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailbot import outbox
from mailbot.models import aware
from mailbot.store import InboundMessage, MailboxState, OperatorAlert, OutboxMessage, log_event

log = logging.getLogger("mailbot.alerts")
KINDS = ("mailbox-down", "sending-failed", "quarantined", "needs-person", "link-failed")


def raise_alert(session: Session, ctx, kind: str, key: str, detail: str, **values) -> bool:
    """Record a condition and mail the operators unless it was mailed recently or the hour's
    budget is spent. Returns whether a mail was queued."""
    settings, now = ctx.settings, ctx.now
    row = session.exec(select(OperatorAlert).where(OperatorAlert.key == key)).first()
    if row is None:
        try:
            with session.begin_nested():
                row = OperatorAlert(key=key, kind=kind, detail=detail, first_at=now, last_at=now, count=1)
                session.add(row)
        except IntegrityError:  # another worker recorded it at the same moment
            row = session.exec(select(OperatorAlert).where(OperatorAlert.key == key)).one()
    else:
        row.count += 1
        row.last_at, row.detail, row.resolved_at = now, detail, None
    if not settings.operators:
        return False
    cfg = settings.alerts
    if row.sent_at is not None and aware(row.sent_at) > now - timedelta(hours=cfg.repeat_hours):
        return False
    sent_hour = session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "alert", OutboxMessage.created_at > now - timedelta(hours=1))).one()
    if sent_hour >= cfg.max_per_hour:
        log.warning("alert %s not mailed: %d alerts in the last hour", key, sent_hour)
        return False
    box = _sender(session, settings, values.pop("failing_mailbox", None))
    for to in settings.operators:
        out = outbox.letter("alert", settings=settings, mailbox=box, to=to, now=now, tag=kind,
                            kind_name=kind, detail=detail, first_at=_local(row.first_at, settings.tz),
                            count=row.count, **{"inbound_id": None, "tracking": None, "expires": None, **values})
        outbox.enqueue(session, out, settings.outbox, now, capped=False)
    row.sent_at = now
    log_event(session, "alert", f"{kind}: {detail}", inbound_id=values.get("inbound_id"),
              submission_id=values.get("submission_id"))
    return True


def resolve(session: Session, key: str, now: datetime) -> None:
    """The condition is over (a mailbox answers again): a new failure alerts at once."""
    row = session.exec(select(OperatorAlert).where(OperatorAlert.key == key)).first()
    if row is not None and row.resolved_at is None:
        row.resolved_at, row.sent_at = now, None


def _local(value, tz) -> str:
    return aware(value).astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


def _sender(session, settings, failing: str | None) -> str:
    """Alerts leave from the configured mailbox, else the first one whose sending is not failing."""
    if settings.alerts.mailbox:
        return settings.alerts.mailbox
    stuck = set(session.exec(select(OutboxMessage.mailbox).where(
        OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))).all())
    stuck.add(failing)
    return next((b.name for b in settings.mailboxes if b.name not in stuck), settings.mailboxes[0].name)


def check(session: Session, ctx) -> int:
    """The periodic look (every few minutes): mailboxes that cannot log in or connect, and
    mail that has failed to send, for longer than configured. Returns alerts mailed."""
    settings, now, cfg = ctx.settings, ctx.now, ctx.settings.alerts
    mailed = 0
    for state in session.exec(select(MailboxState)).all():
        key = f"mailbox-down:{state.mailbox}"
        since = aware(state.last_contact_at or state.updated_at)
        if state.last_error and since < now - timedelta(minutes=cfg.mailbox_down_minutes):
            minutes = int((now - since).total_seconds() // 60)
            mailed += raise_alert(session, ctx, "mailbox-down", key, f"邮箱 {state.mailbox}：{state.last_error}",
                                  mailbox_name=state.mailbox, minutes=minutes, failing_mailbox=state.mailbox)
        elif not state.last_error:
            resolve(session, key, now)
    failing = session.exec(select(OutboxMessage.mailbox, func.min(OutboxMessage.created_at), func.count(),
                                  func.max(OutboxMessage.last_error))
                           .where(OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None),
                                  OutboxMessage.kind != "alert")
                           .group_by(OutboxMessage.mailbox)).all()
    stuck = set()
    for box, oldest, count, error in failing:
        stuck.add(box)
        if aware(oldest) < now - timedelta(minutes=cfg.sending_failed_minutes):
            minutes = int((now - aware(oldest)).total_seconds() // 60)
            mailed += raise_alert(session, ctx, "sending-failed", f"sending-failed:{box}",
                                  f"邮箱 {box} 有 {count} 封邮件发送失败：{error}", mailbox_name=box, minutes=minutes,
                                  waiting=count, failing_mailbox=box)
    for row in session.exec(select(OperatorAlert).where(OperatorAlert.kind == "sending-failed",
                                                        OperatorAlert.resolved_at.is_(None))).all():
        if row.key.partition(":")[2] not in stuck:
            resolve(session, row.key, now)
    return mailed


def summary_due(session: Session, ctx) -> bool:
    """The daily 待处理 summary, once a day at `alerts.summary_time` (claimed by its alert row)."""
    settings, now = ctx.settings, ctx.now
    at = settings.alerts.summary_time
    if not settings.operators or at is None:
        return False
    local = now.astimezone(settings.tz)
    hour, minute = map(int, at.split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return False
    key = f"summary:{local.date().isoformat()}"
    if session.exec(select(OperatorAlert.id).where(OperatorAlert.key == key)).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(OperatorAlert(key=key, kind="summary", detail="", first_at=now, last_at=now, sent_at=now))
    except IntegrityError:
        return False
    from mailbot.digest import stats

    total, waiting = stats.needs_person(session, limit=30)
    failed = stats.failed_mail(session, limit=10)
    held_total = total
    pending = session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))).one()
    open_alerts = session.exec(select(OperatorAlert).where(OperatorAlert.resolved_at.is_(None),
                                                           OperatorAlert.kind.in_(("mailbox-down", "sending-failed")))
                               ).all()
    if not (total or failed or pending or open_alerts):
        return False  # nothing waits: no mail
    box = _sender(session, settings, None)
    for to in settings.operators:
        out = outbox.letter("alert-summary", settings=settings, mailbox=box, to=to, now=now,
                            tag=local.date().isoformat(), date=local.strftime("%Y年%m月%d日"), total=held_total,
                            waiting=[dict(w, received_at=_local(w["received_at"], settings.tz)) for w in waiting],
                            failed=[dict(f, created_at=_local(f["created_at"], settings.tz)) for f in failed],
                            pending=pending, problems=[a.detail for a in open_alerts])
        outbox.enqueue(session, out, settings.outbox, now, capped=False)
    return True


def about_message(session: Session, ctx, row: InboundMessage, kind: str, why: str,
                  submission_id: int | None = None, tracking: str | None = None) -> bool:
    """An alert about one received message (quarantined, needs a person)."""
    return raise_alert(session, ctx, kind, f"inbound:{row.id}", why, inbound_id=row.id, tracking=tracking,
                       submission_id=submission_id, sender=row.from_address, subject=row.subject)
