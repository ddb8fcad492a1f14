"""The numbers behind the weekly digest and the operator's `status`/`list`, read from the
database with SQL aggregates (counts, sums, GROUP BY), never by loading every row.

Only the bounded lists are read as rows: this week's new 稿件 and decisions (a week's
worth), the oldest waiting reviews (a LIMIT) and a campaign's latest returns (one per unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import JSON, Integer, and_, case, cast, func, type_coerce
from sqlmodel import Session, select

from mailbot.campaigns import deadlines, workdays
from mailbot.forms import find_template
from mailbot.store import (
    FormReturn,
    FormRow,
    InboundMessage,
    MailboxState,
    OutboxMessage,
    ReviewTask,
    Submission,
)

WAITING_LIMIT = 15
CITY_LEVEL = "市直单位"  # the tally's "county" of roster units that have no parent
UNMATCHED = "（未能对应名册的行）"


@dataclass
class Snapshot:
    """What the digest needs to know about one period, for one scope (all, or one department)."""

    department: str | None
    new_by_dept: dict[str, int] = field(default_factory=dict)
    prev_by_dept: dict[str, int] = field(default_factory=dict)
    new_by_unit: list[tuple[str, str, int]] = field(default_factory=list)  # unit, dept, count
    new_items: list[dict] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)  # approve / return / reroute
    decision_items: list[dict] = field(default_factory=list)
    waiting_total: int = 0
    waiting: list[dict] = field(default_factory=list)  # oldest first
    returned_open: int = 0  # 退回, waiting for the unit's revision
    weekly: dict[str, list[int]] = field(default_factory=dict)  # dept -> counts, oldest week first
    week_starts: list[datetime] = field(default_factory=list)
    campaigns: list[dict] = field(default_factory=list)
    failures_total: int = 0
    failures: list[dict] = field(default_factory=list)
    needs_person_total: int = 0  # received messages waiting for a person (office scope only)
    totals: dict[str, int] = field(default_factory=dict)  # all time, by status


def snapshot(session: Session, settings, starts: datetime, ends: datetime, department: str | None = None,
             weeks: int = 12) -> Snapshot:
    """The period [starts, ends) for the office (department None) or one department."""
    snap = Snapshot(department=department)
    sub_scope = [Submission.department == department] if department else []
    snap.new_by_dept = _count_by_dept(session, sub_scope, starts, ends)
    snap.prev_by_dept = _count_by_dept(session, sub_scope, starts - (ends - starts), starts)
    snap.new_by_unit = [(u or "（未识别单位）", d, n) for u, d, n in session.exec(
        select(Submission.unit, Submission.department, func.count()).where(
            Submission.created_at >= starts, Submission.created_at < ends, *sub_scope)
        .group_by(Submission.unit, Submission.department).order_by(func.count().desc(), Submission.unit))]
    snap.new_items = [dict(tracking=t, title=ti, unit=u, department=d, status=s, revision=r, created_at=c)
                      for t, ti, u, d, s, r, c in session.exec(
                          select(Submission.tracking, Submission.title, Submission.unit, Submission.department,
                                 Submission.status, Submission.revision, Submission.created_at)
                          .where(Submission.created_at >= starts, Submission.created_at < ends, *sub_scope)
                          .order_by(Submission.created_at))]
    _decisions(session, snap, sub_scope, starts, ends)
    _waiting(session, snap, settings, sub_scope, ends)
    snap.week_starts = [ends - timedelta(weeks=weeks - i) for i in range(weeks)]
    snap.weekly = _weekly(session, sub_scope, snap.week_starts, ends)
    snap.totals = dict(session.exec(select(Submission.status, func.count()).where(*sub_scope)
                                    .group_by(Submission.status)).all())
    snap.campaigns = [campaign_progress(session, settings, c, starts, ends) for c in settings.campaigns
                      if department is None or c.department == department]
    if department is None:
        _failures(session, snap, starts, ends)
        snap.needs_person_total = needs_person(session, limit=0)[0]
    return snap


def _count_by_dept(session, scope, starts, ends) -> dict[str, int]:
    return dict(session.exec(select(Submission.department, func.count()).where(
        Submission.created_at >= starts, Submission.created_at < ends, *scope).group_by(Submission.department)).all())


def _decisions(session, snap: Snapshot, scope, starts, ends) -> None:
    rows = session.exec(
        select(ReviewTask.decision, ReviewTask.created_at, ReviewTask.decided_at, ReviewTask.stage_name,
               ReviewTask.reviewer, ReviewTask.reason, Submission.tracking, Submission.unit, Submission.department)
        .join(Submission, Submission.id == ReviewTask.submission_id)
        .where(ReviewTask.status == "decided", ReviewTask.decided_at >= starts, ReviewTask.decided_at < ends, *scope)
        .order_by(ReviewTask.decided_at)).all()
    for decision, created, decided, stage, reviewer, reason, tracking, unit, dept in rows:
        snap.decisions[decision] = snap.decisions.get(decision, 0) + 1
        snap.decision_items.append(dict(decision=decision, stage=stage, reviewer=reviewer, reason=reason,
                                        tracking=tracking, unit=unit, department=dept, created_at=created,
                                        decided_at=decided))


def _waiting(session, snap: Snapshot, settings, scope, now: datetime) -> None:
    waiting = (select(ReviewTask.created_at, ReviewTask.stage_name, ReviewTask.reviewer, Submission.tracking,
                      Submission.title, Submission.unit, Submission.department, Submission.revision)
               .join(Submission, Submission.id == ReviewTask.submission_id)
               .where(ReviewTask.status == "open", ReviewTask.created_at < now, *scope))
    snap.waiting_total = session.exec(select(func.count()).select_from(waiting.subquery())).one()
    names = {r.key: r.name for r in settings.reviewers}
    for since, stage, reviewer, tracking, title, unit, dept, revision in session.exec(
            waiting.order_by(ReviewTask.created_at, ReviewTask.id).limit(WAITING_LIMIT)):
        snap.waiting.append(dict(since=since, stage=stage, reviewer=names.get(reviewer, reviewer), tracking=tracking,
                                 title=title, unit=unit, department=dept, revision=revision))
    snap.returned_open = session.exec(select(func.count()).select_from(Submission).where(
        Submission.status == "returned", *scope)).one()


def _weekly(session, scope, week_starts: list[datetime], ends: datetime) -> dict[str, list[int]]:
    bounds = [*week_starts, ends]
    columns = [func.sum(case((and_(Submission.created_at >= bounds[i], Submission.created_at < bounds[i + 1]), 1),
                             else_=0)) for i in range(len(week_starts))]
    rows = session.exec(select(Submission.department, *columns).where(
        Submission.created_at >= bounds[0], Submission.created_at < ends, *scope).group_by(Submission.department))
    return {row[0]: [int(v or 0) for v in row[1:]] for row in rows}


def _failures(session, snap: Snapshot, starts, ends) -> None:
    bad = (OutboxMessage.status.in_(("failed", "uncertain")), OutboxMessage.created_at >= starts,
           OutboxMessage.created_at < ends)
    snap.failures_total = session.exec(select(func.count()).select_from(OutboxMessage).where(*bad)).one()
    snap.failures = failed_mail(session, *bad[1:])


def failed_mail(session, *where, limit: int = 10) -> list[dict]:
    """The latest outbox rows that failed or may not have gone out, newest first."""
    rows = session.exec(select(OutboxMessage.kind, OutboxMessage.to_address, OutboxMessage.subject,
                               OutboxMessage.status, OutboxMessage.last_error, OutboxMessage.created_at)
                        .where(OutboxMessage.status.in_(("failed", "uncertain")), *where)
                        .order_by(OutboxMessage.created_at.desc()).limit(limit))
    return [dict(kind=k, to=t, subject=s, status=st, error=e, created_at=c) for k, t, s, st, e, c in rows]


# --- campaigns ------------------------------------------------------------------------


def campaign_progress(session, settings, campaign, starts: datetime, ends: datetime) -> dict:
    """Sent / valid / missing per audience, days to each deadline, and the tally of every
    integer column per county (the row's parent) now and at the start of the period."""
    returns = session.exec(select(FormReturn.id, FormReturn.unit, FormReturn.sender, FormReturn.valid,
                                  FormReturn.received_at).where(FormReturn.campaign == campaign.key,
                                                                FormReturn.received_at < ends)
                           .order_by(FormReturn.id)).all()
    sent = {unit for _id, unit, _s, _v, _at in returns if unit}
    latest_now = _latest_valid(returns, ends)
    latest_before = _latest_valid(returns, starts)
    audiences = []
    for audience in campaign.audiences:
        units = deadlines.audience_units(audience, settings.units)
        closes = deadlines.closes_at(audience.deadline, audience.inclusive, settings.tz)
        missing = [u for u in units if u not in latest_now]
        audiences.append(dict(name=audience.name, deadline=audience.deadline, units=len(units),
                              sent=sum(1 for u in units if u in sent), valid=len(units) - len(missing),
                              missing=missing, days_left=(closes.astimezone(settings.tz).date()
                                                          - ends.astimezone(settings.tz).date()).days))
    template = find_template(settings.forms_folder, campaign.template)
    numeric = [c.name for c in template.columns if c.type == "integer"] if template else []
    tally = {col: _tally(session, list(latest_now.values()), list(latest_before.values()), col) for col in numeric}
    return dict(key=campaign.key, name=campaign.name, template=campaign.template, audiences=audiences,
                returns_this_period=sum(1 for r in returns if r[4] >= starts), tally=tally)


def _latest_valid(returns, before: datetime) -> dict[str, int]:
    latest: dict[str, int] = {}
    for rid, unit, sender, valid, at in returns:
        if valid and at < before:
            latest[unit or sender] = rid
    return latest


def _tally(session, now_ids: list[int], before_ids: list[int], column: str) -> list[dict]:
    """Per county: the sum of `column` over the latest valid returns, now and a period ago."""
    now, before = _sum_by_parent(session, now_ids, column), _sum_by_parent(session, before_ids, column)
    return [dict(county=county, value=now.get(county, 0), previous=before.get(county, 0))
            for county in sorted(set(now) | set(before), key=lambda c: (-now.get(c, 0), c))]


def _sum_by_parent(session, ids: list[int], column: str) -> dict[str, int]:
    if not ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        value = cast(FormRow.data_json, JSON)[column].as_integer()
    else:
        value = type_coerce(FormRow.data_json, JSON)[column].as_integer()
    county = func.coalesce(FormRow.parent, UNMATCHED)  # collecting._county: the parent, 市直单位, the sender's
    rows = session.exec(select(county, func.sum(cast(value, Integer))).where(FormRow.return_id.in_(ids))
                        .group_by(county)).all()
    return {c: int(v or 0) for c, v in rows}


# --- the operator's view --------------------------------------------------------------


def needs_person(session: Session, limit: int = 50) -> tuple[int, list[dict]]:
    """Received messages that wait for a person (held, quarantined, not understood), oldest
    first: how many, and the first `limit` with why."""
    where = InboundMessage.outcome == "needs-person"
    total = session.exec(select(func.count()).select_from(InboundMessage).where(where)).one()
    rows = session.exec(select(InboundMessage.id, InboundMessage.received_at, InboundMessage.from_address,
                               InboundMessage.subject, InboundMessage.first_mailbox, InboundMessage.outcome_reason,
                               InboundMessage.status)
                        .where(where).order_by(InboundMessage.received_at, InboundMessage.id).limit(limit)).all()
    return total, [dict(inbound_id=i, received_at=at, sender=sender, subject=subject, mailbox=box, reason=why,
                        quarantined=state == "quarantined") for i, at, sender, subject, box, why, state in rows]


def capped(session: Session, now: datetime, limit: int = 10) -> tuple[int, list[dict]]:
    """Mail the daily cap held back in the last 24 hours (events `outbox-cap`), newest first."""
    from mailbot.store import Event

    where = (Event.kind == "outbox-cap", Event.at > now - timedelta(days=1))
    total = session.exec(select(func.count()).select_from(Event).where(*where)).one()
    rows = session.exec(select(Event.at, Event.detail).where(*where).order_by(Event.id.desc()).limit(limit)).all()
    return total, [dict(at=at, detail=detail) for at, detail in rows]


def status(session: Session, settings, now: datetime) -> dict:
    """Mailboxes' last contact, queue depths, outbox failures: `mailbot status`."""
    boxes = {b.mailbox: b for b in session.exec(select(MailboxState))}
    mailboxes = [dict(name=box.name, address=box.email,
                      last_contact_at=getattr(boxes.get(box.name), "last_contact_at", None),
                      last_error=getattr(boxes.get(box.name), "last_error", None),
                      last_uid=getattr(boxes.get(box.name), "last_uid", 0)) for box in settings.mailboxes]
    outbox = dict(session.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    inbound = dict(session.exec(select(InboundMessage.status, func.count()).group_by(InboundMessage.status)).all())
    due = session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)).one()
    open_reviews = session.exec(select(func.count()).select_from(ReviewTask).where(ReviewTask.status == "open")).one()
    failures = failed_mail(session)
    waiting_total, waiting = needs_person(session, limit=10)
    capped_total, capped_items = capped(session, now)
    return dict(mailboxes=mailboxes, inbound=inbound, outbox=outbox, outbox_due=due, open_reviews=open_reviews,
                needs_person_total=waiting_total, needs_person=waiting, capped_total=capped_total, capped=capped_items,
                submissions=dict(session.exec(select(Submission.status, func.count()).group_by(Submission.status)).all()),
                failures=failures, calendar_gaps=workdays.calendar_gaps(settings, now))

