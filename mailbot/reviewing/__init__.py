"""Review by e-mail, the side with effects: start a stage (tasks, tokens, forwards to the
reviewers), and act on a reviewer's reply (judge it, record the decision, confirm, notify
the unit, the next stage and the publisher). Runs inside the recording transaction, so a
decision and every mail it causes commit together.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from mailbot import outbox, review
from mailbot.models import Handled, Mail, Route, mail_from_json
from mailbot.models import aware as _aware
from mailbot.read import quotes
from mailbot.read.usable import display_name
from mailbot.store import (
    Event,
    InboundMessage,
    ReviewTask,
    Submission,
    SubmissionFile,
    log_event,
    place_files,
)

log = logging.getLogger("mailbot.reviewing")
WORDS = {"approve": "通过", "return": "退回", "reroute": "转"}


def _dept_box(settings, dept_key: str):
    dept = settings.department(dept_key)
    name = dept.mailbox or settings.mailboxes[0].name
    return dept, settings.mailbox(name)


def start_stage(session: Session, ctx, sub: Submission, stage: int, body: str = "") -> None:
    """Open review tasks for one stage and forward the 稿件 to each reviewer."""
    settings = ctx.settings
    stages = settings.review.stages.get(sub.department, [])
    if stage >= len(stages):
        return
    sub.stage, sub.status = stage, "reviewing"
    step = stages[stage]
    dept, box = _dept_box(settings, sub.department)
    files = session.exec(select(SubmissionFile).where(SubmissionFile.submission_id == sub.id,
                                                      SubmissionFile.revision == sub.revision)).all()
    budget, kept = settings.review.forward_attach_max_bytes, set()
    for f in files:  # a fetched 超大附件 (a video) may be too large to mail: listed, not attached
        if f.size <= budget:
            kept.add(f.id)
            budget -= f.size
    attachments = tuple((f.filename, (ctx.storage / f.path).read_bytes(), f.content_type) for f in files
                        if f.id in kept)
    flags = review.attention_flags([sub.title, body, *[f.filename for f in files]])
    previous = _changes(session, sub, files) if sub.revision > 1 else None
    history = decisions_so_far(session, settings, sub, before_stage=stage)
    for who in step.reviewers:
        person = settings.reviewer(who)
        token = review.make_token(ctx.secret, sub.tracking, sub.revision, stage, who, secrets.token_hex(8))
        reply_to = box.email.replace("@", f"+{token}@") if settings.review.plus_addressing else box.email
        out = outbox.letter(
            "review-request", settings=settings, from_department=sub.department, from_address=reply_to,
            to=person.addresses[0], to_name=person.name, now=ctx.now, tag=sub.tracking, id_token=token,
            thread=thread_for(session, sub, person.addresses[0]), attachments=attachments, tracking=sub.tracking, token=token, reply_address=reply_to,
            stage_name=step.name, title=sub.title, unit=sub.unit, department=dept.name,
            route_reason=sub.route_reason, revision=sub.revision, files=[display_name(f.filename, i) + (f"（无法打开：{f.problem}）" if f.problem else "")
                                       + ("" if f.id in kept else "（文件较大，未随信附上，已存档，可向管理员索取）")
                                       for i, f in enumerate(files, 1)], flags=flags,
            previous=previous, history=history, body=body[:5000], reviewer=person.name)
        session.add(ReviewTask(submission_id=sub.id, revision=sub.revision, department=sub.department, stage=stage,
                               stage_name=step.name, reviewer=who, token=token, message_id=out.message_id,
                               expires_at=ctx.now + timedelta(days=settings.review.token_days), created_at=ctx.now))
        outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id)
    log_event(session, "review-started", f"{sub.tracking} r{sub.revision} {step.name}: {'、'.join(step.reviewers)}",
              submission_id=sub.id)


def decisions_so_far(session, settings, sub: Submission, before_stage: int | None = None) -> list[dict]:
    """Each earlier stage's decision on this revision, with the reviewer's words, in order."""
    tasks = session.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id,
                                                  ReviewTask.revision == sub.revision,
                                                  ReviewTask.status == "decided")
                         .order_by(ReviewTask.stage, ReviewTask.decided_at, ReviewTask.id)).all()
    return [{"stage": t.stage_name, "reviewer": settings.reviewer(t.reviewer).name, "decision": WORDS[t.decision],
             "reason": t.reason, "at": _aware(t.decided_at).astimezone(settings.tz).strftime("%m月%d日 %H:%M")}
            for t in tasks if t.decision in WORDS and (before_stage is None or t.stage < before_stage)]


def _publish_files(session, ctx, sub: Submission) -> tuple[list[dict], tuple, bool]:
    """The approved revision's files for the publisher: attached when small enough, else listed."""
    from mailbot.filing import human_size

    files = session.exec(select(SubmissionFile).where(SubmissionFile.submission_id == sub.id,
                                                      SubmissionFile.revision == sub.revision)
                         .order_by(SubmissionFile.id)).all()
    listed = [{"name": display_name(f.filename, i), "size": human_size(f.size)} for i, f in enumerate(files, 1)]
    attach = sum(f.size for f in files) <= ctx.settings.review.publish_attach_max_bytes
    data = tuple((f.filename, (ctx.storage / f.path).read_bytes(), f.content_type) for f in files) if attach else ()
    return listed, data, attach


def record_published(session, ctx, row, sub: Submission, sender: str) -> Handled:
    """The publisher's 已发布: the 稿件's publication, once (the digest counts it)."""
    if sub.status != "approved":
        return Handled("needs-person", f"{sub.tracking} 还没有审核通过，却收到“已发布”，请人工核实", sub.id)
    if sub.published_at is not None:
        return Handled("ignored", f"{sub.tracking} 此前已记录为已发布", sub.id)
    sub.published_at = ctx.now
    log_event(session, "published", f"{sub.tracking} 已发布", inbound_id=row.id, submission_id=sub.id, actor=sender)
    return Handled("applied", f"记录稿件 {sub.tracking} 已发布", sub.id)


def _changes(session, sub: Submission, files: list) -> dict[str, list[str]]:
    """The files' names since the previous revision: new, changed (same name, other
    content), the same, and gone."""
    before = {f.filename: f.sha256 for f in session.exec(select(SubmissionFile).where(
        SubmissionFile.submission_id == sub.id, SubmissionFile.revision == sub.revision - 1,
        SubmissionFile.source == "unit")).all()}  # a reviewer's file was never the unit's to remove
    after = {f.filename: f.sha256 for f in files if f.source == "unit"}
    return {"new": [n for n in after if n not in before],
            "changed": [n for n in after if n in before and after[n] != before[n]],
            "same": [n for n in after if n in before and after[n] == before[n]],
            "gone": [n for n in before if n not in after]}


OUTCOMES = {"refuse": ("answered", "审核回复未被接受（{code}），已告知发件人"),
            "hold": ("needs-person", "审核回复需管理员确认（{code}）"),
            "ask": ("answered", "审核回复意见不明确，已请审核人明确"),
            "ack": ("ignored", "审核人的回复不是审核决定（确认收到等），无需处理")}


def handle_reply(session: Session, ctx, row: InboundMessage, mail: Mail, route: Route, staged) -> Handled:
    """A reply in a review thread: judge who sent it and what it says, then act; return
    what became of it."""
    settings = ctx.settings
    sender = mail.from_.address.lower()
    if review.answers_digest(mail):
        notice(session, ctx, None, sender, "digest-reply")
        return Handled("answered", "回复的是领导周报，已告知周报邮箱不收回复")
    new = quotes.new_text(mail.text, mail.html)
    if route.tracking and quotes.says_published(new) and _may_publish(ctx, sender):
        sub = session.exec(select(Submission).where(Submission.tracking == route.tracking)).first()
        if sub is not None:
            return record_published(session, ctx, row, sub, sender)
    tokens = review.find_tokens(mail)
    task = session.exec(select(ReviewTask).where(ReviewTask.token.in_(tokens))).first() if tokens else None
    sub = session.get(Submission, task.submission_id) if task else None
    targets = [d.name for d in settings.departments]
    command = quotes.read_command(quotes.new_text(mail.text, mail.html), targets)
    view = None
    if task is not None:
        view = review.TaskView(task.token, task.reviewer, frozenset(a.lower() for a in settings.reviewer(task.reviewer).addresses),
                               task.status, _aware(task.expires_at))
    everyone = {a.lower() for r in settings.reviewers for a in r.addresses}
    verdict = review.judge(sender, view, command.decision, review.auth_verdict(mail.headers,
                           settings.review.authserv_id), ctx.now, sender in everyone,
                           review.sender_problem(mail))
    sub_id = sub.id if sub else None
    if task is not None and _awaits_reason(task) and sender in view.addresses and not review.sender_problem(mail):
        if (came := _reason_came(session, ctx, row, sub, task, mail, sender)) is not None:
            return came
    if verdict.action != "decide":  # an accepted decision is recorded as a "decision" event below
        log_event(session, f"review-{verdict.action}", f"{verdict.code}: {command.decision or '-'} "
                  f"{command.reason or ''}".strip(), inbound_id=row.id, submission_id=sub_id, actor=sender)
    if verdict.action == "decide":  # the reviewer's files belong to the decision
        _decide(session, ctx, row, sub, task, command, verdict, sender, files=staged)
        return Handled("applied", f"审核决定：{task.stage_name} {WORDS[command.decision]}", sub_id)
    ACTIONS[verdict.action](session, ctx, row, sub, task, command, verdict, sender)
    if verdict.action == "ignore":
        return _unit_reply(session, row, mail, route)
    kind, why = OUTCOMES[verdict.action]
    return Handled(kind, why.format(code=verdict.code), sub_id)


def _may_publish(ctx, sender: str) -> bool:
    """The publisher's own mailbox (its staff answer from it) or a reviewer may say 已发布."""
    settings = ctx.settings
    own = {b.email.lower() for b in settings.mailboxes}
    people = {a.lower() for r in settings.reviewers for a in r.addresses}
    return sender in own or sender in people


def _unit_reply(session, row, mail: Mail, route: Route) -> Handled:
    """A reply that is no review answer (a unit answering a receipt or a notice): an
    acknowledgement needs nothing; anything else is read by a person."""
    sub = session.exec(select(Submission).where(Submission.tracking == route.tracking)).first() \
        if route.tracking else None
    intent = quotes.reply_intent(quotes.new_text(mail.text, mail.html))
    if intent in ("ack", "empty"):
        return Handled("ignored", "确认收到（acknowledgement），无需回复" if intent == "ack" else "回复没有新内容",
                       sub.id if sub else None)
    return Handled("needs-person", f"{route.reason}；内容不是审核决定也不是修改稿，请人工查看并答复",
                   sub.id if sub else None)


def _ignore(*_args) -> None:
    return None


def _refuse(session, ctx, row, sub, task, command, verdict, sender) -> None:
    notice(session, ctx, sub, sender, "review-refused", code=verdict.code)


def _hold(session, ctx, row, sub, task, command, verdict, sender) -> None:
    notice(session, ctx, sub, sender, "review-held", code=verdict.code, decision=WORDS.get(command.decision or ""))


def _ask(session, ctx, row, sub, task, command, verdict, sender) -> None:
    notice(session, ctx, sub, sender, "review-unclear")


def _decide(session, ctx, row, sub, task, command, verdict, sender, files=()) -> None:
    """Apply an accepted decision. The reviewer's files (修改意见见附件) are kept with the 稿件
    (source reviewer, never a revision) and, with 退回, sent to the unit with the reason."""
    settings = ctx.settings
    kept = [f for f in files if not f.in_forwarded_message]
    placed = place_files(session, ctx.storage, sub.id, kept, f"{sub.folder}/审核意见-v{task.revision}-{task.stage + 1}",
                         task.revision, source="reviewer") if kept else []
    task.status, task.decision, task.reason = "decided", command.decision, command.reason
    if command.decision == "approve" and not command.reason:  # the approver's words travel with the 稿件
        task.reason = quotes.approval_words(quotes.new_text(mail_text(session, row)[0], mail_text(session, row)[1]))
    task.decided_by, task.decided_at, task.inbound_id = sender, ctx.now, row.id
    stages = settings.review.stages.get(sub.department, [])
    step = stages[task.stage] if task.stage < len(stages) else None
    siblings = session.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id,
                                                     ReviewTask.revision == task.revision,
                                                     ReviewTask.stage == task.stage)).all()
    approvals = sum(t.decision == "approve" for t in siblings)
    outcome = review.transition(command.decision, task.stage, len(stages), step.mode if step else "first",
                                approvals, len(siblings))
    if outcome.kind != "wait":
        for t in siblings:
            if t.status == "open":
                t.status = "closed"
    log_event(session, "decision", f"{task.stage_name} {WORDS[command.decision]}"
              f"{' ' + command.target if command.target else ''}{' ' + command.reason if command.reason else ''}"
              f" → {outcome.kind}", inbound_id=row.id, submission_id=sub.id, actor=sender)
    next_step = _apply_outcome(session, ctx, sub, task, command, outcome, placed)
    person = settings.reviewer(task.reviewer)
    if outcome.kind == "returned" and task.reason_asked_at is not None:
        return  # the question for the reason is the reviewer's confirmation: nothing was passed on yet
    _send(session, ctx, sub, sender, "review-confirm", "review-confirm", tracking=sub.tracking, title=sub.title,
          reviewer=person.name, decision=WORDS[command.decision], target=command.target, reason=command.reason,
          outcome=outcome.kind, **next_step)


def _apply_outcome(session, ctx, sub, task, command, outcome, placed=()) -> dict:
    """Act on the outcome; return what the reviewer's confirmation says of the next step."""
    settings = ctx.settings
    sub.updated_at = ctx.now
    if outcome.kind == "wait":
        return {}
    if outcome.kind == "advance":
        start_stage(session, ctx, sub, outcome.next_stage, _body(session, sub))
        step = settings.review.stages[sub.department][outcome.next_stage]
        return {"next_reviewers": [settings.reviewer(r).name for r in step.reviewers], "next_stage": step.name}
    if outcome.kind == "rerouted":
        key = next((d.key for d in settings.departments if d.name == command.target), sub.department)
        sub.department = key
        sub.status = "received"
        start_stage(session, ctx, sub, 0, _body(session, sub))
        return {}
    unit = {"tracking": sub.tracking, "title": sub.title, "greeting": sub.unit or sub.sender_name}
    if outcome.kind == "returned":
        sub.status = "returned"
        if command.reason is None and not placed:  # 退回 alone, or the mailto: body unedited
            _ask_reason(session, ctx, sub, task)
            return {}
        _tell_returned(session, ctx, sub, task, command.reason, placed)
        return {}
    sub.status = "approved"
    publisher = settings.department(settings.review.publisher).name if settings.review.publisher else None
    _send(session, ctx, sub, sub.sender, "result", "review-approved", **unit, publisher=publisher)
    if publisher:
        _, box = _dept_box(settings, settings.review.publisher)
        listed, data, attached = _publish_files(session, ctx, sub)
        _send(session, ctx, sub, box.email, "publish-ready", "review-publish", tracking=sub.tracking,
              title=sub.title, unit=sub.unit, folder=sub.folder, publisher=publisher, files=listed,
              attached=attached, attachments=data, history=decisions_so_far(session, settings, sub))
    return {"publisher": publisher}


def _tell_returned(session, ctx, sub, task, reason: str | None, placed=()) -> None:
    """The 退回 notice to the unit, with the reason (or, without one, whom to ask)."""
    unit = {"tracking": sub.tracking, "title": sub.title, "greeting": sub.unit or sub.sender_name}
    _send(session, ctx, sub, sub.sender, "result", "review-returned", **unit, stage=task.stage_name,
          reason=reason, revision=sub.revision, files=[f["name"] for f in placed],
          attachments=tuple((f["name"], f["path"].read_bytes(), f["content_type"]) for f in placed))
    task.unit_told_at = ctx.now


def mail_text(session, row) -> tuple[str, str | None]:
    """(text, html) of a stored message, from its parse summary."""
    import json

    data = json.loads(row.parsed_json) if row is not None and row.parsed_json else {}
    return data.get("text") or "", data.get("html")


def _ask_reason(session, ctx, sub, task) -> None:
    """Ask the reviewer, once, for the reason of a 退回 that gave none; the unit is told when
    it comes (`_reason_came`) or after `review.reason_wait_hours` (`tell_unreasoned`)."""
    settings = ctx.settings
    person = settings.reviewer(task.reviewer)
    _dept, box = _dept_box(settings, sub.department)
    reply_to = box.email.replace("@", f"+{task.token}@") if settings.review.plus_addressing else box.email
    out = outbox.letter("review-reason", settings=settings, from_department=sub.department, from_address=reply_to,
                        to=person.addresses[0], to_name=person.name, now=ctx.now, tag=sub.tracking,
                        id_token=task.token, thread=thread_for(session, sub, person.addresses[0]), tracking=sub.tracking, token=task.token, title=sub.title,
                        stage=task.stage_name, reviewer=person.name,
                        wait_hours=f"{settings.review.reason_wait_hours:g}")
    outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id)
    task.reason_asked_at = ctx.now
    log_event(session, "review-reason-asked", f"{task.stage_name} {task.reviewer}: 退回 without a reason",
              submission_id=sub.id)


def _awaits_reason(task) -> bool:
    return task.status == "decided" and task.decision == "return" and task.reason_asked_at is not None \
        and task.reason is None


def _reason_came(session, ctx, row, sub, task, mail: Mail, sender: str) -> Handled | None:
    """The reviewer's answer to the question for a reason: pass it on to the unit."""
    new = quotes.new_text(mail.text, mail.html)
    command = quotes.read_command(new, [d.name for d in ctx.settings.departments])
    if command.decision in ("approve", "reroute"):
        return None  # not a reason: judged as any other reply (already decided)
    reason = command.reason if command.decision == "return" else new.strip()
    if not reason or quotes.reply_intent(new) in ("ack", "empty") and command.decision != "return":
        return Handled("ignored", "审核人回复了补充原因的邮件，但没有写原因", sub.id)
    task.reason = reason
    log_event(session, "review-reason", f"{task.stage_name}: {reason}", inbound_id=row.id, submission_id=sub.id,
              actor=sender)
    late = task.unit_told_at is not None
    _tell_returned(session, ctx, sub, task, reason)
    person = ctx.settings.reviewer(task.reviewer)
    _send(session, ctx, sub, sender, "review-confirm", "review-confirm", tracking=sub.tracking, title=sub.title,
          reviewer=person.name, decision=WORDS["return"], target=None, reason=reason, outcome="returned")
    return Handled("applied", f"退回原因已转告报送单位{'（单位此前已收到未写原因的退回通知）' if late else ''}", sub.id)


def tell_unreasoned(session: Session, ctx) -> int:
    """Units whose 退回 still has no reason after `reason_wait_hours` are told anyway,
    with whom to contact. Returns how many were told."""
    wait = timedelta(hours=ctx.settings.review.reason_wait_hours)
    tasks = session.exec(select(ReviewTask).where(ReviewTask.decision == "return", ReviewTask.reason.is_(None),
                                                  ReviewTask.reason_asked_at.is_not(None),
                                                  ReviewTask.unit_told_at.is_(None))).all()
    told = 0
    for task in tasks:
        if _aware(task.reason_asked_at) + wait > ctx.now:
            continue
        sub = session.get(Submission, task.submission_id)
        _tell_returned(session, ctx, sub, task, None)
        log_event(session, "review-reason-timeout", f"{task.stage_name}: no reason after {wait}; unit told",
                  submission_id=sub.id)
        told += 1
    return told


def _body(session, sub) -> str:
    inbound = session.get(InboundMessage, sub.inbound_id)
    import json

    return json.loads(inbound.parsed_json)["text"] if inbound and inbound.parsed_json else ""


def notice(session, ctx, sub, to: str, template: str, **values) -> None:
    """An answer to a message that decided nothing by itself (refused, held, unclear, sent to
    the digest, a revision held or turned down)."""
    _send(session, ctx, sub, to, "review-notice", template, tracking=sub.tracking if sub else None, **values)


def unit_messages(session, sub) -> tuple[str, ...]:
    """The unit's own messages that made the 稿件 (revision 1, and the latest revision)."""
    ids = []
    first = session.exec(select(InboundMessage.message_id).join(Event, Event.inbound_id == InboundMessage.id).where(
        Event.submission_id == sub.id, Event.kind == "filed")).first()
    latest = session.get(InboundMessage, sub.inbound_id)
    for found in (first, latest.message_id if latest else None):
        if found and found not in ids:
            ids.append(found)
    return tuple(ids)


def thread_for(session, sub, to: str) -> tuple[str, ...]:
    """What a letter about `sub` to `to` continues (the unit's thread starts with its own mail)."""
    if sub is None:
        return ()
    first = unit_messages(session, sub) if to.strip().lower() == (sub.sender or "").strip().lower() else ()
    return outbox.thread(session, sub.id, to, first)


def _send(session, ctx, sub, to: str, kind: str, template: str, **values) -> None:
    """A letter about a 稿件 (or, with no 稿件, about review in general) from its department,
    in the thread of earlier mail about it to the same person."""
    settings = ctx.settings
    out = outbox.letter(kind, template, settings=settings,
                        from_department=sub.department if sub else settings.routing.default, to=to, now=ctx.now,
                        tag=sub.tracking if sub else "notice", thread=thread_for(session, sub, to), **values)
    outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id if sub else None,
                   capped=not outbox.owed(kind, to_roster=False) and kind in outbox.CAPPED_KINDS)


ACTIONS = {"ignore": _ignore, "ack": _ignore, "refuse": _refuse, "hold": _hold, "ask": _ask, "decide": _decide}


def chase_reviews(session: Session, ctx) -> int:
    """Remind reviewers of reviews waiting too long (working days), once; then tell the
    leader, once. Only in office hours. Returns how many mails were queued."""
    from mailbot.campaigns import workdays

    settings, cfg = ctx.settings, ctx.settings.review
    cal = workdays.office_calendar(settings)
    if not workdays.in_office_hours(ctx.now, settings.tz, cfg.office_hours, calendar=cal):
        return 0
    queued = tell_unreasoned(session, ctx)
    tasks = session.exec(select(ReviewTask).where(ReviewTask.status == "open")).all()
    for task in tasks:
        if _aware(task.expires_at) <= ctx.now:
            continue
        waited, known = workdays.working_days_between(_aware(task.created_at), ctx.now, settings.tz, calendar=cal)
        since = None
        if task.chased_at:
            since = workdays.working_days_between(_aware(task.chased_at), ctx.now, settings.tz, calendar=cal)[0]
        action = review.chase_action(waited, since, task.escalated_at is not None, cfg.chase_after_days,
                                     cfg.escalate_after_days)
        if action is None:
            continue
        sub = session.get(Submission, task.submission_id)
        about = {"tracking": sub.tracking, "title": sub.title, "unit": sub.unit, "stage": task.stage_name,
                 "waited": waited, "calendar_known": known}
        if action == "chase":
            task.chased_at = ctx.now
            queued += _remind(session, ctx, sub, task, about)
        else:
            task.escalated_at = ctx.now
            queued += _escalate(session, ctx, sub, task, about)
    return queued


def _remind(session, ctx, sub, task, about: dict) -> int:
    settings = ctx.settings
    person = settings.reviewer(task.reviewer)
    out = outbox.letter("review-reminder", settings=settings, from_department=sub.department,
                        to=person.addresses[0], to_name=person.name, now=ctx.now, tag=sub.tracking,
                        id_token=task.token, thread=thread_for(session, sub, person.addresses[0]), **about, token=task.token, reviewer=person.name)
    outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id)
    log_event(session, "review-chased", f"{task.stage_name} {task.reviewer}: {about['waited']} working days",
              submission_id=sub.id)
    return 1


def _escalate(session, ctx, sub, task, about: dict) -> int:
    settings = ctx.settings
    stages = settings.review.stages.get(sub.department, [])
    leaders = settings.review.escalate_to or (stages[-1].reviewers if stages else [])
    leaders = [who for who in leaders if who != task.reviewer]
    waiting_on = settings.reviewer(task.reviewer).name
    for who in leaders:
        _send(session, ctx, sub, settings.reviewer(who).addresses[0], "review-escalation", "review-escalation",
              **about, leader=settings.reviewer(who).name, reviewer=waiting_on)
    log_event(session, "review-escalated", f"{task.stage_name} {task.reviewer} → {'、'.join(leaders) or '（无人可报）'}",
              submission_id=sub.id)
    return len(leaders)


def confirm_held(session: Session, ctx, inbound_id: int, operator: str, files=None) -> str:
    """The operator vouches for a held reply: its decision is applied as if the sender were
    on the reviewer's list (the token must still be valid and the review still open).
    `files` returns the reply's attachments, staged; asked only when the decision applies,
    and they are placed once, as the reviewer's (what is not taken is removed)."""
    import json

    row = session.get(InboundMessage, inbound_id)
    if row is None or not row.parsed_json:
        return "没有这封邮件"
    mail = mail_from_json(json.loads(row.parsed_json))
    tokens = review.find_tokens(mail)
    task = session.exec(select(ReviewTask).where(ReviewTask.token.in_(tokens))).first() if tokens else None
    if task is None or task.status != "open" or _aware(task.expires_at) <= ctx.now:
        return "这项审核已经结束或已过期，无法再执行这封回复的意见"
    command = quotes.read_command(quotes.new_text(mail.text, mail.html), [d.name for d in ctx.settings.departments])
    if command.decision not in ("approve", "return", "reroute"):
        return "这封回复里没有明确的审核意见"
    sub = session.get(Submission, task.submission_id)
    sender = mail.from_.address.lower()
    log_event(session, "review-confirmed", f"operator {operator} confirmed the reply from {sender}",
              inbound_id=inbound_id, submission_id=sub.id, actor=operator)
    staged = files() if files is not None else ()
    try:
        _decide(session, ctx, row, sub, task, command, review.Verdict("decide", command.decision), sender,
                files=staged)
    finally:
        for item in staged:
            Path(item.path).unlink(missing_ok=True)
    row.outcome, row.outcome_reason = "applied", f"管理员 {operator} 确认后执行：{task.stage_name} {WORDS[command.decision]}"
    return f"已执行：{WORDS[command.decision]}（稿件 {sub.tracking}）"
