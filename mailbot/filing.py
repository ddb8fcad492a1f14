"""Filing a 稿件: tracking number, submission and file rows, attachments on disk under
<storage>/<year>/<department>/<unit>/<tracking>/, the target IMAP folder, and the receipt.

Everything here runs inside the transaction that records the parse result, so the
稿件, its files' rows, the server move and the receipt in the outbox commit together.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailbot import alerts, outbox, review, reviewing
from mailbot.campaigns import collecting
from mailbot.config import Settings
from mailbot.models import Handled, Mail, Route, Staged, aware
from mailbot.office import Context
from mailbot.read.parse import safe_name
from mailbot.store import (
    Event,
    InboundMessage,
    MessageCopy,
    ReviewTask,
    Submission,
    TrackingCounter,
    log_event,
    place_files,
)

log = logging.getLogger("mailbot.filing")
_OUR_ID = re.compile(rb"<mailbot\.[^<>\s]+>")
_TRACKING_IN_ID = re.compile(r"^<mailbot\.[a-z-]+\.([A-Z]{1,4}-\d{4}-\d{3,6})\.")
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


_POOL = "mailbot.tracking"  # session.info key: {(prefix, year): [next, last]} reserved by this transaction
_MOVES = "mailbot.target-folders"  # session.info key: [(inbound_id, folder)] written at finish_batch
_FILED = "mailbot.new-submissions"  # session.info key: {inbound_id: Submission} INSERTed at prepare_batch


def _bump(session: Session, prefix: str, year: int, n: int) -> int:
    """Add n to the year's counter in one atomic UPDATE … RETURNING (the row stays locked
    until commit, so several workers never get the same number); the new value."""
    bump = (update(TrackingCounter).where(TrackingCounter.prefix == prefix, TrackingCounter.year == year)
            .values(value=TrackingCounter.value + n).returning(TrackingCounter.value))
    value = session.execute(bump).scalar_one_or_none()
    if value is None:
        try:
            with session.begin_nested():
                session.add(TrackingCounter(prefix=prefix, year=year, value=n))
            value = n
        except IntegrityError:  # another worker created the year's counter first
            value = session.execute(bump).scalar_one()
    return value


def allocate_tracking(session: Session, prefix: str, year: int) -> str:
    """The next tracking number, e.g. KP-2026-0042: from the numbers this transaction
    reserved for its batch (`reserve_tracking`), else one atomic UPDATE … RETURNING."""
    pool = session.info.get(_POOL, {}).get((prefix, year))
    if pool is not None and pool[0] <= pool[1]:
        value = pool[0]
        pool[0] += 1
    else:
        value = _bump(session, prefix, year, 1)
    return f"{prefix}-{year}-{value:04d}"


def reserve_tracking(session: Session, wanted: dict[tuple[str, int], int]) -> None:
    """Take the numbers a batch will need, one UPDATE per department and year instead of
    one per 稿件; `release_tracking` hands back what the batch did not use, in the same
    transaction, so the numbers stay consecutive."""
    pool = session.info.setdefault(_POOL, {})
    for (prefix, year), n in sorted(wanted.items()):
        if n > 0 and (prefix, year) not in pool:
            last = _bump(session, prefix, year, n)
            pool[(prefix, year)] = [last - n + 1, last]


def release_tracking(session: Session) -> None:
    """Give back the reserved numbers left unused (the counter row is still ours: locked
    by this transaction's UPDATE)."""
    for (prefix, year), (next_value, last) in session.info.pop(_POOL, {}).items():
        if next_value <= last:
            session.execute(update(TrackingCounter).where(
                TrackingCounter.prefix == prefix, TrackingCounter.year == year, TrackingCounter.value == last)
                .values(value=next_value - 1))


def prepare_batch(session: Session, ctx: Context, items: list[tuple[InboundMessage, Mail, Route]]) -> None:
    """Before handling a batch of classified messages in one transaction: reserve the
    tracking numbers its new 稿件 need, count the receipts' daily cap for all its senders at
    once, and collect the server moves to write them together (`finish_batch`)."""
    settings = ctx.settings
    wanted: dict[tuple[str, int], int] = {}
    senders = []
    for row, mail, route in items:
        if route.kind == "submission":
            year = aware(row.received_at or ctx.now).astimezone(settings.tz).year
            key = (settings.department(route.department).prefix, year)
            wanted[key] = wanted.get(key, 0) + 1
        if route.kind in ("submission", "resubmission"):
            senders.append(_reply_address(mail))
    reserve_tracking(session, wanted)
    outbox.count_recent(session, senders, ctx.now)
    session.info[_MOVES] = []
    # the batch's new 稿件, numbered in the order they came and INSERTed with one statement
    new = [(row.id, _new_submission(session, ctx, row, mail, route))
           for row, mail, route in items if route.kind == "submission"]
    subs = _insert_all(session, [values for _id, values in new])
    session.info[_FILED] = {inbound_id: sub for (inbound_id, _values), sub in zip(new, subs)}


def finish_batch(session: Session) -> None:
    """After the batch's handlers: unused numbers back, the server moves in one statement."""
    release_tracking(session)
    session.info.pop(_FILED, None)
    moves = session.info.pop(_MOVES, None)
    if moves:
        session.execute(update(MessageCopy.__table__).where(MessageCopy.__table__.c.inbound_id == bindparam("_id"))
                        .values(target_folder=bindparam("_folder")),
                        [{"_id": inbound_id, "_folder": folder} for inbound_id, folder in moves])


def handle(session: Session, ctx: Context, row: InboundMessage, mail: Mail, route: Route,
           staged: tuple[Staged, ...]) -> Handled:
    """Act on one classified message (HANDLERS by kind); other kinds are only recorded.
    Every message ends with an outcome a person can see (`record_outcome`)."""
    handler = HANDLERS.get(route.kind)
    done = handler(session, ctx, row, mail, route, staged) if handler is not None else None
    if not isinstance(done, Handled):
        done = Handled("ignored", route.reason)
    record_outcome(session, row, done)
    if done.kind == "needs-person":
        sub = session.get(Submission, done.submission_id) if done.submission_id else None
        alerts.about_message(session, ctx, row, "needs-person", done.reason, done.submission_id,
                             sub.tracking if sub else None)
    for item in staged:  # what no handler took (e.g. a reply's signature image)
        Path(item.path).unlink(missing_ok=True)
    return done


def record_outcome(session, row: InboundMessage, done: Handled) -> None:
    """The message's outcome on its row, and as an event (so `show` lists every one)."""
    row.outcome, row.outcome_reason = done.kind, done.reason
    log_event(session, f"outcome-{done.kind}", done.reason, inbound_id=row.id, submission_id=done.submission_id)


def file_submission(session, ctx: Context, row, mail: Mail, route: Route, staged) -> Submission:
    sub = session.info.get(_FILED, {}).pop(row.id, None)  # INSERTed with its batch (prepare_batch)
    if sub is None:
        [sub] = _insert_all(session, [_new_submission(session, ctx, row, mail, route)])
    files = place_files(session, ctx.storage, sub.id, staged, sub.folder, revision=1)
    _target_folder(session, ctx, row, route.unit)
    log_event(session, "filed", f"{sub.tracking}: {route.reason}", inbound_id=row.id, submission_id=sub.id)
    _receipt(session, ctx, sub, row, mail, files)
    reviewing.start_stage(session, ctx, sub, 0, mail.text)
    return sub


def _new_submission(session, ctx: Context, row, mail: Mail, route: Route) -> dict:
    """A new 稿件's columns for this message, with the next tracking number of its department."""
    settings = ctx.settings
    dept = settings.department(route.department)
    # The year the robot received it: a 稿件 kept at 12-31 23:59 and filed after midnight is
    # still one of that year's (KP-2026-…), as its receipt-to-be says.
    local = aware(row.received_at or ctx.now).astimezone(settings.tz)
    tracking = allocate_tracking(session, dept.prefix, local.year)
    unit_dir = safe_name(route.unit or settings.filing.unknown_unit_folder, 1, "")
    folder = f"{local.year}/{safe_name(dept.name, 1, '')}/{unit_dir}/{tracking}"
    return dict(_SUBMISSION_DEFAULTS, tracking=tracking, department=dept.key, unit=route.unit,
                unit_known=route.unit_known, title=_title(mail), sender=_reply_address(mail),
                sender_name=mail.from_.name or None, mailbox=row.first_mailbox, route_reason=route.reason,
                inbound_id=row.id, folder=folder, oversized=row.size > settings.filing.max_message_bytes,
                created_at=ctx.now, updated_at=ctx.now)


# the columns a new 稿件 does not set, as the model defaults them
_SUBMISSION_DEFAULTS = {name: field.default for name, field in Submission.model_fields.items()
                        if name != "id" and not field.is_required() and field.default_factory is None}
_INSERT_SUBMISSIONS = insert(Submission.__table__).returning(Submission.__table__.c.id, sort_by_parameter_order=True)


def _insert_all(session: Session, rows: list[dict]) -> list[Submission]:
    """INSERT new 稿件 with one multi-row statement, then load them with one SELECT (the
    session tracks them as loaded, and loading is far cheaper than building each through the
    model). Nothing else pending is flushed per 稿件: their files, events and receipts go in
    together at commit."""
    if not rows:
        return []
    # on the session's connection: the ORM's execute() would flush everything pending first
    ids = session.connection().execute(_INSERT_SUBMISSIONS, rows).scalars().all()
    loaded = {sub.id: sub for sub in session.exec(select(Submission).where(Submission.id.in_(ids)))}
    return [loaded[i] for i in ids]


def file_resubmission(session, ctx: Context, row, mail: Mail, route: Route, staged,
                      vouched_by: str | None = None) -> Submission:
    """A revised version for an existing tracking number: revision n+1 of the same 稿件,
    when its sender may make one (`revision_problem`) or an operator vouched for it
    (`vouched_by`); otherwise nothing changes and the message is held for the operator."""
    sub = _submission_for(session, mail, route)
    if sub is None:  # a number we never issued: treat it as a new 稿件
        dept_key = route.department or ctx.directory.unknown
        return file_submission(session, ctx, row, mail, replace(route, department=dept_key), staged)
    problem = None if vouched_by else revision_problem(session, ctx, sub, mail)
    if problem is not None:
        _hold_revision(session, ctx, row, sub, mail, problem)
        return sub
    if not staged:  # the revision is written in the body: its text is the 稿件
        staged = (_text_as_file(ctx, row, mail, sub.revision + 1),)
    sub.revision += 1
    sub.status = "received"
    sub.updated_at = ctx.now
    sub.inbound_id = row.id  # the forward of this revision quotes this message
    for task in session.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id,
                                                      ReviewTask.status == "open")).all():
        task.status = "closed"  # the old revision's open reviews end here
    files = place_files(session, ctx.storage, sub.id, staged, f"{sub.folder}/v{sub.revision}", sub.revision)
    _target_folder(session, ctx, row, sub.unit)
    log_event(session, "resubmitted", f"{sub.tracking} revision {sub.revision}", inbound_id=row.id,
              submission_id=sub.id)
    _receipt(session, ctx, sub, row, mail, files)
    reviewing.start_stage(session, ctx, sub, 0, mail.text)
    return sub


def _text_as_file(ctx: Context, row, mail: Mail, revision: int) -> Staged:
    """A revision written in the body, kept as a text file like any attachment."""
    import hashlib

    from mailbot.read import quotes

    data = quotes.new_text(mail.text, mail.html).encode("utf-8")
    folder = ctx.storage / "staging" / str(row.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "body.txt"
    path.write_bytes(data)
    name = f"第{revision}版正文.txt"
    return Staged(str(path), name, name, len(data), hashlib.sha256(data).hexdigest(), "text/plain")


def _submission_for(session, mail: Mail, route: Route) -> Submission | None:
    """The 稿件 a revision is for: by the tracking number in the subject, else by the
    receipt or notice it answers (our Message-ID carries the number)."""
    tracking = route.tracking
    if tracking is None:
        for ref in (mail.in_reply_to or "", *reversed(mail.references)):
            if found := _TRACKING_IN_ID.search(ref):
                tracking = found.group(1)
                break
    if tracking is None:
        return None
    return session.exec(select(Submission).where(Submission.tracking == tracking)).first()


def revision_problem(session, ctx: Context, sub: Submission, mail: Mail) -> str | None:
    """Why this message may not become a revision of `sub`, or None. Only the 稿件's own
    unit (an address or domain the roster gives it) or whoever sent revision 1 may revise
    it: the tracking number authorises nothing, and neither does a unit named in the subject
    or the signature. A message not from exactly one sender never does, nor one whose DMARC or
    DKIM check failed at the trusted server (as for a reviewer's reply)."""
    if problem := review.sender_problem(mail):
        return problem
    if review.auth_verdict(mail.headers, ctx.settings.review.authserv_id) is False:
        return "auth-failed"  # our own server says the From is forged: the address proves nothing
    sender = mail.from_.address.strip().lower()
    entry = next((u for u in ctx.directory.units if u.name == sub.unit), None) if sub.unit_known else None
    if entry is not None and (sender in entry.addresses or sender.rpartition("@")[2] in entry.domains):
        return None
    if sender in _first_senders(session, sub):
        return None
    return "not-the-unit"


def _first_senders(session, sub: Submission) -> set[str]:
    """The From (and the reply address) of the message that made revision 1."""
    found = {sub.sender.strip().lower()} if sub.sender else set()
    first = session.exec(select(Event.inbound_id).where(Event.submission_id == sub.id, Event.kind == "filed")
                         .order_by(Event.id)).first()
    if first is not None and (row := session.get(InboundMessage, first)) is not None and row.from_address:
        found.add(row.from_address.strip().lower())
    return found


def _hold_revision(session, ctx: Context, row, sub: Submission, mail: Mail, problem: str) -> None:
    """Nothing changes; the operator decides (`mailbot review held` / `confirm` / `reject`),
    and the sender is told politely that the office will look at it."""
    sender = mail.from_.address.strip().lower()
    log_event(session, "revision-hold", f"{problem}: {sender} sent files for {sub.tracking}",
              inbound_id=row.id, submission_id=sub.id, actor=sender)
    if _ADDRESS.match(sender):
        reviewing.notice(session, ctx, sub, sender, "revision-held", code=problem)


def note_bounce(session, ctx: Context, row, mail: Mail, route: Route, staged) -> None:
    """A bounce that names one of our messages marks that outbox row failed, visibly."""
    raw = (ctx.storage / row.raw_path).read_bytes()
    ids = sorted({m.decode("ascii", "replace") for m in _OUR_ID.findall(raw)})
    if ids:
        outbox.mark_bounced(session, ids, route.reason)


def _filed(session, ctx: Context, row, mail: Mail, route: Route, staged) -> Handled:
    sub = file_submission(session, ctx, row, mail, route, staged)
    return Handled("filed", f"登记为稿件 {sub.tracking}{_links_failed(session, ctx, row, sub)}", sub.id)


def _refiled(session, ctx: Context, row, mail: Mail, route: Route, staged) -> Handled:
    sub = file_resubmission(session, ctx, row, mail, route, staged)
    if sub.inbound_id == row.id:
        return Handled("filed", f"登记为稿件 {sub.tracking} 第{sub.revision}版{_links_failed(session, ctx, row, sub)}",
                       sub.id)
    return Handled("needs-person", f"稿件 {sub.tracking} 的修改稿不是该单位或原发件人发来的，等待管理员确认", sub.id)


def _large_attachments(row) -> list[dict]:
    """What became of the message's 超大附件 links (the parse worker's `large_attachments`)."""
    import json

    text = row.parsed_json or ""
    if '"large_attachments"' not in text:  # nearly every message: no link, no need to read the summary
        return []
    return json.loads(text).get("large_attachments") or []


def _links_failed(session, ctx: Context, row, sub: Submission) -> str:
    """Each 超大附件 link that could not be fetched: an event and an operator alert (before it
    expires). Returns a note for the outcome."""
    failed = [link for link in _large_attachments(row) if not link["fetched"]]
    for link in failed:
        name = link["name"] or link["url"] or "超大附件"
        detail = f"{name}：{link['error']}（{link['expires'] or '到期时间不明'} 到期）"
        log_event(session, "link-failed", detail, inbound_id=row.id, submission_id=sub.id)
        alerts.raise_alert(session, ctx, "link-failed", f"link:{row.id}:{link['url']}", detail, tracking=sub.tracking,
                           submission_id=sub.id, inbound_id=row.id, expires=link["expires"])
    fetched = [link for link in _large_attachments(row) if link["fetched"]]
    for link in fetched:
        log_event(session, "link-fetched", link["name"] or link["url"], inbound_id=row.id, submission_id=sub.id)
    return f"；{len(failed)} 个超大附件未能下载，已提醒管理员" if failed else ""


def _bounced(session, ctx: Context, row, mail: Mail, route: Route, staged) -> Handled:
    note_bounce(session, ctx, row, mail, route, staged)
    return Handled("ignored", route.reason)


def _form(session, ctx: Context, row, mail: Mail, route: Route, staged) -> Handled:
    from mailbot.store import FormReturn

    collecting.handle_form(session, ctx, row, mail, route, staged)
    session.flush()
    found = session.exec(select(FormReturn.campaign).where(FormReturn.inbound_id == row.id)).all()
    stamped = session.exec(select(Event.id).where(Event.inbound_id == row.id,
                                                  Event.kind.in_(("form-stamped", "form-scan")))).first()
    if found or stamped:
        return Handled("filed", f"报表已登记（{'、'.join(sorted(set(found))) or route.campaign}），已回复填报结果")
    return Handled("needs-person", f"附件像是报表，但找不到对应的报表活动：{route.reason}")


HANDLERS = {"submission": _filed, "resubmission": _refiled, "bounce": _bounced,
            "reply": reviewing.handle_reply, "form": _form}


def _title(mail: Mail) -> str:
    from mailbot.routing import clean_title

    return clean_title(mail.subject)[:500]


def _reply_address(mail: Mail) -> str:
    return (mail.reply_to[0].address if mail.reply_to else mail.from_.address).strip()


def _target_folder(session, ctx: Context, row, unit: str | None) -> None:
    cfg = ctx.settings.filing
    if not cfg.move_to_unit_folder:
        return
    folder = f"{cfg.folder_prefix}/{unit or cfg.unknown_unit_folder}".replace(".", "_")
    if (moves := session.info.get(_MOVES)) is not None:  # a batch: written together at finish_batch
        moves.append((row.id, folder))
        return
    session.execute(update(MessageCopy).where(MessageCopy.inbound_id == row.id).values(target_folder=folder))


def human_size(size: int) -> str:
    for unit, step in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= step:
            return f"{size / step:.1f} {unit}"
    return f"{size} 字节"


def _receipt(session, ctx: Context, sub: Submission, row, mail: Mail, files: list[dict]) -> None:
    if not _ADDRESS.match(sub.sender):
        log_event(session, "receipt-skipped", f"{sub.tracking}: sender address {sub.sender!r} cannot be mailed",
                  inbound_id=row.id)
        return
    fetched = {link["url"] for link in _large_attachments(row) if link["fetched"]}
    if fetched:  # a fetched 超大附件 is one of the files now
        mail = replace(mail, large_attachment_links=tuple(
            link for link in mail.large_attachment_links if link.url not in fetched))
    out = plan_receipt(ctx.settings, sub, row.first_mailbox, row.size, mail, files, ctx.now)
    outbox.enqueue(session, out, ctx.settings.outbox, ctx.now, submission_id=sub.id, inbound_id=row.id,
                   capped=not outbox.owed("receipt", to_roster(ctx, sub.sender)))


def to_roster(ctx: Context, address: str) -> bool:
    """Is this address a roster unit's (by its addresses or domains)?"""
    from mailbot.routing import roster_unit

    return roster_unit(address, ctx.directory) is not None


def plan_receipt(settings: Settings, sub: Submission, mailbox: str, size: int, mail: Mail,
                 files: list[dict], now: datetime, token: str | None = None) -> outbox.Outgoing:
    """The receipt (回执) for a filed 稿件, from the mailbox it arrived in, threaded under
    the unit's message. `token` fixes the Message-ID (golden files)."""
    dept = settings.department(sub.department)
    names = {b.name for b in settings.mailboxes}
    arrived = settings.mailbox(mailbox if mailbox in names else (dept.mailbox or settings.mailboxes[0].name))
    sender_dept = next((d for d in settings.departments if d.mailbox == arrived.name), dept)
    received = now.astimezone(settings.tz).strftime("%Y年%m月%d日 %H:%M")
    return outbox.letter(
        "receipt", settings=settings, mailbox=arrived.name,
        from_name=sender_dept.sender_name or f"{settings.organisation}{sender_dept.name}",
        to=sub.sender, now=now, tag=sub.tracking, id_token=token,
        answering=mail.message_id, answering_refs=mail.references,
        tracking=sub.tracking, title=sub.title, revision=sub.revision, unit=sub.unit, department=dept.name,
        received=received, greeting=sub.unit or mail.from_.name,
        reviewed=bool(settings.review.stages.get(sub.department)),
        files=[{"name": f["name"], "size": human_size(f["size"]), "problem": f.get("problem")} for f in files],
        links=mail.large_attachment_links, oversized=sub.oversized, size=human_size(size))


