"""What the console's pages show, read from the database: today at a glance, the 稿件 list
and page, the exceptions, a campaign's board. Every reader takes the signed-in `Staff` and
keeps a clerk to their department."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Integer, cast
from sqlmodel import Session, func, or_, select

from mailbot import held
from mailbot.campaigns import deadlines
from mailbot.models import aware
from mailbot.store import (
    CampaignReminder,
    Event,
    FormReturn,
    FormRow,
    InboundMessage,
    MailboxState,
    OutboxMessage,
    ReviewTask,
    Submission,
    SubmissionFile,
)
from mailbot.web.security import NotFound, Staff

STATUSES = ("received", "reviewing", "approved", "returned", "published", "withdrawn")
PER_PAGE = 50
COUNT_CAP = 1000
PERSON_KINDS = ("other",)  # parsed, but nothing the robot knows how to handle: a person reads it
SETTLED = ("inbound-dismissed", "inbound-assigned")


@dataclass(frozen=True)
class ListQuery:
    """The 稿件 list's filters as typed into the form (all optional)."""

    status: str = ""
    department: str = ""
    unit: str = ""
    q: str = ""
    since: str = ""
    until: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params) -> "ListQuery":
        try:
            page = max(1, int(params.get("page") or 1))
        except ValueError:
            page = 1
        return cls(*(str(params.get(k) or "").strip()[:200] for k in ("status", "department", "unit", "q",
                                                                        "since", "until")), page=page)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def list_filters(query: ListQuery, staff: Staff, tz) -> list:
    """The WHERE clauses of the list: a clerk only ever sees their department."""
    where = []
    if staff.scope:
        where.append(Submission.department == staff.scope)
    if query.status == "published":  # 已通过 and published (reviewing.record_published)
        where.append(Submission.published_at.is_not(None))
    elif query.status in STATUSES:
        where.append(Submission.status == query.status)
    elif query.status == "waiting":
        where.append(Submission.status.in_(("received", "reviewing")))
    if query.department:
        where.append(Submission.department == query.department)
    if query.unit:
        where.append(Submission.unit.contains(query.unit, autoescape=True))
    if query.q:
        text = query.q
        where.append(or_(Submission.title.contains(text, autoescape=True),
                         Submission.unit.contains(text, autoescape=True),
                         Submission.tracking == text.upper()))
    if (since := _day(query.since)) is not None:
        where.append(Submission.created_at >= datetime.combine(since, time(0), tzinfo=tz))
    if (until := _day(query.until)) is not None:
        where.append(Submission.created_at < datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz))
    return where


def submissions(session: Session, settings, staff: Staff, query: ListQuery) -> dict:
    """One page of the list, newest first, with whom each waits on."""
    where = list_filters(query, staff, settings.tz)
    counted = select(Submission.id).where(*where)
    if query.q or query.unit:  # a text search reads every title: stop counting past COUNT_CAP
        counted = counted.limit(COUNT_CAP + 1)
    total = session.exec(select(func.count()).select_from(counted.subquery())).one()
    # ids first (an index-only walk past the offset), then the page's rows
    ids = session.exec(select(Submission.id).where(*where).order_by(Submission.created_at.desc(), Submission.id.desc())
                       .offset((query.page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    found = {s.id: s for s in session.exec(select(Submission).where(Submission.id.in_(ids)))} if ids else {}
    rows = [found[i] for i in ids]
    waiting = _waiting_on(session, settings, [s.id for s in rows])
    pages = max(1, -(-total // PER_PAGE))
    return {"total": total, "more": total > COUNT_CAP and bool(query.q or query.unit), "items": rows,
            "waiting": waiting, "page": query.page, "pages": pages}


def _waiting_on(session: Session, settings, ids: list[int]) -> dict[int, list[str]]:
    people = {r.key: r.name for r in settings.reviewers}
    found: dict[int, list[str]] = {}
    if ids:
        for t in session.exec(select(ReviewTask).where(ReviewTask.status == "open", ReviewTask.submission_id.in_(ids))):
            found.setdefault(t.submission_id, []).append(f"{t.stage_name}：{people.get(t.reviewer, t.reviewer)}")
    return found


def find_submission(session: Session, staff: Staff, tracking: str) -> Submission:
    sub = session.exec(select(Submission).where(Submission.tracking == tracking.strip().upper())).first()
    if sub is None or not staff.sees(sub.department):
        raise NotFound(tracking)
    return sub


def submission_page(session: Session, settings, staff: Staff, tracking: str) -> dict:
    """A 稿件's record, timeline (as `mailbot show`), files by revision and every mail sent about it."""
    sub = find_submission(session, staff, tracking)
    tasks = session.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id).order_by(ReviewTask.id)).all()
    events = session.exec(select(Event).where(or_(Event.submission_id == sub.id, Event.inbound_id == sub.inbound_id))
                          .order_by(Event.at, Event.id)).all()
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.submission_id == sub.id)
                        .order_by(OutboxMessage.id)).all()
    files = session.exec(select(SubmissionFile).where(SubmissionFile.submission_id == sub.id)
                         .order_by(SubmissionFile.revision.desc(), SubmissionFile.id)).all()
    revisions: dict[int, list] = {}
    for f in files:
        revisions.setdefault(f.revision, []).append(f)
    return {"sub": sub, "tasks": tasks, "events": events, "mail": mail, "revisions": revisions,
            "open_tasks": [t for t in tasks if t.status == "open"]}


def find_file(session: Session, staff: Staff, file_id: int) -> SubmissionFile:
    f = session.get(SubmissionFile, file_id)
    sub = session.get(Submission, f.submission_id) if f else None
    if sub is None or not staff.sees(sub.department):
        raise NotFound(file_id)
    return f


# --- today at a glance -------------------------------------------------------------------


def home(session: Session, settings, staff: Staff, now: datetime) -> dict:
    """New 稿件 today, waiting reviews oldest first, what needs a person, mailboxes, campaigns."""
    tz = settings.tz
    today = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
    scope = [Submission.department == staff.scope] if staff.scope else []
    new = session.exec(select(Submission).where(Submission.created_at >= today, *scope)
                       .order_by(Submission.created_at.desc()).limit(20)).all()
    people = {r.key: r.name for r in settings.reviewers}
    waits = session.exec(select(ReviewTask, Submission).join(Submission, Submission.id == ReviewTask.submission_id)
                         .where(ReviewTask.status == "open", *scope)
                         .order_by(ReviewTask.created_at, ReviewTask.id).limit(20)).all()
    waiting = [{"task": t, "sub": s, "who": people.get(t.reviewer, t.reviewer),
                "days": (now - aware(t.created_at)).days} for t, s in waits]
    ex = exceptions(session, settings, staff)
    return {"new": new, "waiting": waiting, "counts": {k: len(v) for k, v in ex.items()}, "today": today.date(),
            "mailboxes": mailboxes(session, settings) if staff.role != "clerk" else [],
            "campaigns": campaign_deadlines(settings, staff, now)}


def mailboxes(session: Session, settings) -> list[dict]:
    """Each configured mailbox's last contact and last error (as `mailbot status` shows them)."""
    boxes = {b.mailbox: b for b in session.exec(select(MailboxState))}
    return [{"name": box.name, "address": box.email,
             "last_contact_at": getattr(boxes.get(box.name), "last_contact_at", None),
             "last_error": getattr(boxes.get(box.name), "last_error", None)} for box in settings.mailboxes]


def campaign_deadlines(settings, staff: Staff, now: datetime) -> list[dict]:
    today = now.astimezone(settings.tz).date()
    return [{"campaign": c, "audience": a, "days": (a.deadline - today).days}
            for c in settings.campaigns if staff.sees(c.department) for a in c.audiences]


# --- exceptions --------------------------------------------------------------------------


def exceptions(session: Session, settings, staff: Staff) -> dict[str, list]:
    """Held replies, quarantined and needs-a-person messages, failed or uncertain mail."""
    holds = held.held(session)
    depts = dict(session.exec(select(Submission.id, Submission.department).where(
        Submission.id.in_([h["submission_id"] for h in holds if h["submission_id"]]))).all()) if holds else {}
    holds = [h for h in holds if staff.sees(depts.get(h["submission_id"]))]
    settled = select(Event.inbound_id).where(Event.kind.in_(SETTLED), Event.inbound_id.is_not(None))
    if staff.role == "clerk":  # messages no 稿件 owns yet are the operator's
        quarantined, person = [], []
    else:
        quarantined = session.exec(select(InboundMessage).where(InboundMessage.status == "quarantined",
                                                                InboundMessage.id.not_in(settled))
                                   .order_by(InboundMessage.id)).all()
        person = session.exec(select(InboundMessage).where(InboundMessage.status == "parsed",
                                                           InboundMessage.kind.in_(PERSON_KINDS),
                                                           InboundMessage.id.not_in(settled))
                              .order_by(InboundMessage.id.desc()).limit(200)).all()
    failed = session.exec(select(OutboxMessage, Submission.department)
                          .join(Submission, Submission.id == OutboxMessage.submission_id, isouter=True)
                          .where(OutboxMessage.status.in_(("failed", "uncertain")))
                          .order_by(OutboxMessage.id)).all()
    mail = [m for m, dept in failed if staff.role != "clerk" or dept == staff.scope]
    return {"held": holds, "quarantined": quarantined, "person": person, "mail": mail}


def inbound_message(session: Session, staff: Staff, inbound_id: int, storage) -> dict:
    """A received message shown safely: headers and text as text, and the source, cut short."""
    from mailbot.read.parse import UnreadableMessage, parse
    from mailbot.web.security import inside

    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise NotFound(inbound_id)
    sub = session.exec(select(Submission).where(Submission.inbound_id == row.id)).first()
    hold = next((h for h in held.held(session) if h["inbound_id"] == row.id), None)
    owner = sub or (session.get(Submission, hold["submission_id"]) if hold and hold["submission_id"] else None)
    if staff.role == "clerk" and (owner is None or owner.department != staff.scope):
        raise NotFound(inbound_id)
    data = inside(storage, row.raw_path).read_bytes()
    try:
        mail = parse(data, sha256=row.sha256)
        text, html_only = mail.text, mail.html_only
        files = [a.filename or a.safe_name for a in mail.attachments]
    except UnreadableMessage:
        text, html_only, files = "", False, []
    events = session.exec(select(Event).where(Event.inbound_id == row.id).order_by(Event.id)).all()
    settled = any(e.kind in SETTLED for e in events)
    return {"row": row, "text": text, "html_only": html_only, "files": files, "hold": hold, "events": events,
            "source": data[:200_000].decode("utf-8", "replace"), "cut": len(data) > 200_000, "settled": settled,
            "actionable": not settled and sub is None and hold is None
            and (row.status == "quarantined" or row.kind in PERSON_KINDS)}


# --- campaigns ---------------------------------------------------------------------------


def find_campaign(settings, staff: Staff, key: str):
    campaign = next((c for c in settings.campaigns if c.key == key), None)
    if campaign is None or not staff.sees(campaign.department):
        raise NotFound(key)
    return campaign


def board(session: Session, settings, staff: Staff, key: str, now: datetime) -> dict:
    """Per audience, each unit: versions sent, the latest valid or not, reminders sent."""
    campaign = find_campaign(settings, staff, key)
    returns = session.exec(select(FormReturn.id, FormReturn.unit, FormReturn.version, FormReturn.valid,
                                  FormReturn.received_at, FormReturn.on_time)
                           .where(FormReturn.campaign == key).order_by(FormReturn.id)).all()
    per_unit: dict[str, list] = {}
    for r in returns:
        if r.unit:
            per_unit.setdefault(r.unit, []).append(r)
    reminders = dict(session.exec(select(CampaignReminder.unit, func.count()).where(CampaignReminder.campaign == key)
                                  .group_by(CampaignReminder.unit)).all())
    tz = settings.tz
    today = now.astimezone(tz).date()
    audiences = []
    for audience in campaign.audiences:
        rows = []
        for unit in deadlines.audience_units(audience, settings.units):
            versions = per_unit.get(unit, [])
            latest = versions[-1] if versions else None
            state = "missing" if latest is None else ("valid" if latest.valid else "invalid")
            rows.append({"unit": unit, "state": state, "versions": len(versions), "latest": latest is not None,
                         "latest_id": latest.id if latest else None, "latest_version": latest.version if latest else None,
                         "latest_at": aware(latest.received_at).astimezone(tz).strftime("%m-%d %H:%M") if latest else "",
                         "late": latest is not None and not latest.on_time, "reminders": reminders.get(unit, 0)})
        counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("valid", "invalid", "missing")}
        audiences.append({"audience": audience, "rows": rows, "counts": counts, "sent": len(rows) - counts["missing"],
                          "days": (audience.deadline - today).days})
    return {"campaign": campaign, "audiences": audiences}


def board_version(session: Session, key: str) -> tuple:
    """What the board's rows depend on, read cheaply: the returns (count, newest, how many are
    valid or stamped: a scan arriving later changes those in place) and the reminders sent."""
    returns = session.exec(select(func.count(), func.max(FormReturn.id), func.sum(cast(FormReturn.valid, Integer)),
                                  func.sum(cast(FormReturn.stamped, Integer))).where(FormReturn.campaign == key)).one()
    reminders = session.exec(select(func.count(), func.max(CampaignReminder.id))
                             .where(CampaignReminder.campaign == key)).one()
    return (*returns, *reminders)


def form_return(session: Session, settings, staff: Staff, return_id: int) -> dict:
    """A return's rows with their source cells, its problems and its files."""
    ret = session.get(FormReturn, return_id)
    if ret is None:
        raise NotFound(return_id)
    campaign = find_campaign(settings, staff, ret.campaign)
    rows = session.exec(select(FormRow).where(FormRow.return_id == ret.id).order_by(FormRow.row_index)).all()
    result = json.loads(ret.result_json)
    data = [(r, json.loads(r.data_json)) for r in rows]
    columns = result.get("columns") or (list(data[0][1]) if data else [])
    versions = session.exec(select(FormReturn).where(FormReturn.campaign == ret.campaign, FormReturn.unit == ret.unit)
                            .order_by(FormReturn.version)).all() if ret.unit else [ret]
    prefill = [{c: "" if values.get(c) is None else str(values.get(c)) for c in columns} for _row, values in data]
    for e in result.get("errors") or []:  # what the unit wrote where it could not be read, to correct by hand
        if 0 < (e.get("row_index") or 0) <= len(prefill) and e.get("column") in columns and e.get("value"):
            prefill[e["row_index"] - 1][e["column"]] = e["value"]
    return {"ret": ret, "campaign": campaign, "rows": data, "columns": columns, "result": result,
            "versions": versions, "prefill": prefill}
