"""Review by e-mail, the side with effects: start a stage (tasks, tokens, forwards to the
reviewers), and act on a reviewer's reply (judge it, record the decision, confirm, notify
the unit, the next stage and the publisher). Runs inside the recording transaction, so a
decision and every mail it causes commit together.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from urllib.parse import quote

from sqlmodel import Session, select

from mailbot import outbox, review
from mailbot.models import Mail, Route, mail_from_json
from mailbot.models import aware as _aware
from mailbot.read import quotes
from mailbot.store import (
    InboundMessage,
    ReviewTask,
    Submission,
    SubmissionFile,
    log_event,
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
    attachments = tuple((f.filename, (ctx.storage / f.path).read_bytes(), f.content_type) for f in files)
    flags = review.attention_flags([sub.title, body, *[f.filename for f in files]])
    previous = _changes(session, sub, files) if sub.revision > 1 else None
    for who in step.reviewers:
        person = settings.reviewer(who)
        token = review.make_token(ctx.secret, sub.tracking, sub.revision, stage, who, secrets.token_hex(8))
        reply_to = box.email.replace("@", f"+{token}@") if settings.review.plus_addressing else box.email
        message_id = f"<mailbot.review.{sub.tracking}.{token}@{settings.mail_domain}>"
        session.add(ReviewTask(submission_id=sub.id, revision=sub.revision, department=sub.department, stage=stage,
                               stage_name=step.name, reviewer=who, token=token, message_id=message_id,
                               expires_at=ctx.now + timedelta(days=settings.review.token_days), created_at=ctx.now))
        subject, text, html = outbox.render(
            "review-request", tracking=sub.tracking, token=token, stage_name=step.name, title=sub.title,
            unit=sub.unit, department=dept.name, route_reason=sub.route_reason, revision=sub.revision,
            files=[f.filename for f in files], flags=flags, previous=previous, body=body[:5000],
            reviewer=person.name, links=_links(reply_to, sub.tracking, token, settings))
        out = outbox.Outgoing(kind="review-request", mailbox=box.name, from_name=dept.sender_name or dept.name,
                              from_address=reply_to, to_name=person.name, to_address=person.addresses[0],
                              subject=subject, text=text, html=html, message_id=message_id, date=ctx.now,
                              attachments=attachments)
        outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id)
    log_event(session, "review-started", f"{sub.tracking} r{sub.revision} {step.name}: {'、'.join(step.reviewers)}",
              submission_id=sub.id)


def _changes(session, sub: Submission, files: list) -> str:
    """What changed in the files since the previous revision, by name and content."""
    before = {f.filename: f.sha256 for f in session.exec(select(SubmissionFile).where(
        SubmissionFile.submission_id == sub.id, SubmissionFile.revision == sub.revision - 1)).all()}
    after = {f.filename: f.sha256 for f in files}
    parts = []
    new = [n for n in after if n not in before]
    gone = [n for n in before if n not in after]
    changed = [n for n in after if n in before and after[n] != before[n]]
    same = [n for n in after if n in before and after[n] == before[n]]
    for label, names in (("新增", new), ("修改", changed), ("未变", same), ("不再附上", gone)):
        if names:
            parts.append(f"{label}：{'、'.join(names)}")
    return "；".join(parts) or "附件没有变化（修改可能在正文中）"


def _links(address: str, tracking: str, token: str, settings) -> dict:
    """mailto: links a reviewer taps on a phone; their replies pass the same checks."""
    def link(body: str) -> str:
        return f"mailto:{address}?subject={quote(f'回复：[{tracking}/{token}]')}&body={quote(body)}"
    names = [d.name for d in settings.departments]
    return {"approve": link("通过"), "return": link("退回 （请写明原因）"),
            "reroute": [(n, link(f"转 {n}")) for n in names]}


def handle_reply(session: Session, ctx, row: InboundMessage, mail: Mail, route: Route, staged) -> None:
    """A reply in a review thread: judge who sent it and what it says, then act."""
    settings = ctx.settings
    sender = mail.from_.address.lower()
    if review.answers_digest(mail):
        notice(session, ctx, None, sender, "这是周报，不能在这里审核", "周报只是汇总。请回复每篇稿件各自的审核通知邮件来审核。")
        return
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
    if verdict.action != "decide":  # an accepted decision is recorded as a "decision" event below
        log_event(session, f"review-{verdict.action}", f"{verdict.code}: {command.decision or '-'} "
                  f"{command.reason or ''}".strip(), inbound_id=row.id, submission_id=sub_id, actor=sender)
    ACTIONS[verdict.action](session, ctx, row, sub, task, command, verdict, sender)


def _ignore(*_args) -> None:
    return None


def _refuse(session, ctx, row, sub, task, command, verdict, sender) -> None:
    texts = {
        "no-token": ("未能确认审核身份", "这封回复没有带审核编号（或编号已被修改），为防止冒用，系统没有记录其中的意见。"
                     "请直接回复系统发给您的审核通知邮件（保留主题中的编号），或点按通知中的按钮。"),
        "already-decided": ("这篇稿件本环节已经审核过", "这一环节已有审核意见，系统没有再次记录。如需更改，请与调宣部联系。"),
        "expired": ("审核链接已过期", "这封审核通知已过期，系统没有记录其中的意见。请与调宣部联系，重新发送审核通知。"),
    }
    headline, message = texts.get(verdict.code, ("未能记录您的意见", "系统没有记录这封回复中的意见。"))
    notice(session, ctx, sub, sender, headline, message)


def _hold(session, ctx, row, sub, task, command, verdict, sender) -> None:
    why = {"unknown-address": "您的发件地址不在这位审核人的登记地址中",
           "auth-failed": "收件服务器未能验证这封邮件的发件人",
           "several-from": "这封邮件列出了不止一个发件人",
           "sender-differs": "这封邮件的实际发送人（Sender）与发件人不一致",
           "address-in-name": "这封邮件发件人的显示名称里含有另一个邮箱地址"}.get(verdict.code, "这封邮件的发件人无法确认")
    notice(session, ctx, sub, sender, "您的意见已转交管理员确认",
            f"{why}，为安全起见，系统暂未执行这封回复中的意见（{WORDS.get(command.decision or '', '—')}），"
            "已转交管理员确认。确认后会通知您。")


def _ask(session, ctx, row, sub, task, command, verdict, sender) -> None:
    notice(session, ctx, sub, sender, "没能确定您的审核意见",
            "系统没能从您的回复中确定审核意见，稿件状态没有改变。请直接回复审核通知邮件，第一行只写其中一种：\n"
            "  通过\n  退回 + 原因\n  转 科普部 / 转 学会部 / 转 调宣部")


def _decide(session, ctx, row, sub, task, command, verdict, sender) -> None:
    settings = ctx.settings
    task.status, task.decision, task.reason = "decided", command.decision, command.reason
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
    next_step = _apply_outcome(session, ctx, sub, task, command, outcome)
    person = settings.reviewer(task.reviewer)
    subject, text, _ = outbox.render("review-confirm", tracking=sub.tracking, title=sub.title, reviewer=person.name,
                                     decision_word=WORDS[command.decision] + (f" {command.target}" if command.target else ""),
                                     reason=command.reason, next_step=next_step, organisation=settings.organisation)
    _send(session, ctx, sub, sender, subject, text, "review-confirm", row)


def _apply_outcome(session, ctx, sub, task, command, outcome) -> str:
    settings = ctx.settings
    sub.updated_at = ctx.now
    if outcome.kind == "wait":
        return "已记录，还在等待本环节其他审核人的意见。"
    if outcome.kind == "advance":
        start_stage(session, ctx, sub, outcome.next_stage, _body(session, sub))
        step = settings.review.stages[sub.department][outcome.next_stage]
        names = "、".join(settings.reviewer(r).name for r in step.reviewers)
        return f"已转 {names} {step.name}。"
    if outcome.kind == "rerouted":
        key = next((d.key for d in settings.departments if d.name == command.target), sub.department)
        sub.department = key
        sub.status = "received"
        start_stage(session, ctx, sub, 0, _body(session, sub))
        return f"已转 {command.target} 审核，稿件编号不变。"
    if outcome.kind == "returned":
        sub.status = "returned"
        _unitnotice(session, ctx, sub, "稿件退回，请修改后重新报送",
                     f"您报送的稿件《{sub.title}》（编号 {sub.tracking}）经{task.stage_name}，需要修改后重新报送。",
                     f"退回原因：{command.reason or '（审核人未写明，请与我们联系）'}\n\n"
                     f"修改后请直接回复本邮件并附上修改后的文件，系统会登记为第{sub.revision + 1}版，编号不变。")
        return "已退回报送单位，并告知了退回原因。"
    sub.status = "approved"
    _unitnotice(session, ctx, sub, "稿件已审核通过",
                 f"您报送的稿件《{sub.title}》（编号 {sub.tracking}）已审核通过，将由调宣部安排在微信公众号发布。", "感谢您的支持！")
    publisher = settings.review.publisher
    if publisher:
        _, box = _dept_box(settings, publisher)
        _send(session, ctx, sub, box.email, f"[{sub.tracking}] 已审核通过，可以发布：《{sub.title}》",
              outbox.render("review-notice", tracking=sub.tracking, headline="已审核通过，可以发布",
                            greeting=settings.department(publisher).name, organisation=settings.organisation,
                            message=f"稿件《{sub.title}》（{sub.unit or '未知单位'}，编号 {sub.tracking}）已完成全部审核，可以上传微信公众号。",
                            detail=f"文件在存储目录 {sub.folder}。")[1], "publish-ready", None)
    return "已审核通过，已通知报送单位和调宣部。"


def _body(session, sub) -> str:
    inbound = session.get(InboundMessage, sub.inbound_id)
    import json

    return json.loads(inbound.parsed_json)["text"] if inbound and inbound.parsed_json else ""


def _unitnotice(session, ctx, sub, headline, message, detail) -> None:
    settings = ctx.settings
    subject, text, _ = outbox.render("review-notice", tracking=sub.tracking, headline=headline,
                                     greeting=sub.unit or sub.sender_name or "您好", message=message, detail=detail,
                                     organisation=settings.organisation)
    _send(session, ctx, sub, sub.sender, subject, text, "result", None)


def notice(session, ctx, sub, to: str, headline: str, message: str) -> None:
    """A short polite notice to one person about a 稿件 (or none), from its department's mailbox."""
    subject, text, _ = outbox.render("review-notice", tracking=sub.tracking if sub else None, headline=headline,
                                     greeting="您好", message=message, detail="", organisation=ctx.settings.organisation)
    _send(session, ctx, sub, to, subject, text, "review-notice", None)


def _send(session, ctx, sub, to: str, subject: str, text: str, kind: str, row) -> None:
    settings = ctx.settings
    dept_key = sub.department if sub else settings.routing.default
    dept, box = _dept_box(settings, dept_key)
    tag = sub.tracking if sub else "notice"
    out = outbox.Outgoing(kind=kind, mailbox=box.name, from_name=dept.sender_name or dept.name,
                          from_address=box.email, to_name="", to_address=to, subject=subject, text=text, html=None,
                          message_id=outbox.new_message_id(kind, tag, settings.mail_domain), date=ctx.now)
    outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id if sub else None)


ACTIONS = {"ignore": _ignore, "ack": _ignore, "refuse": _refuse, "hold": _hold, "ask": _ask, "decide": _decide}


def chase_reviews(session: Session, ctx) -> int:
    """Remind reviewers of reviews waiting too long (working days), once; then tell the
    leader, once. Only in office hours. Returns how many mails were queued."""
    from mailbot.campaigns import workdays

    settings, cfg = ctx.settings, ctx.settings.review
    cal = workdays.office_calendar(settings)
    if not workdays.in_office_hours(ctx.now, settings.tz, cfg.office_hours, calendar=cal):
        return 0
    queued = 0
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
        note = "" if known else "（今年的法定节假日安排尚未收录，按周一至周五计算）"
        if action == "chase":
            task.chased_at = ctx.now
            queued += _remind(session, ctx, sub, task, waited, note)
        else:
            task.escalated_at = ctx.now
            queued += _escalate(session, ctx, sub, task, waited, note)
    return queued


def _remind(session, ctx, sub, task, waited: int, note: str) -> int:
    settings = ctx.settings
    person = settings.reviewer(task.reviewer)
    dept, box = _dept_box(settings, sub.department)
    subject = f"[{sub.tracking}/{task.token}] 提醒：稿件《{sub.title}》等待您{task.stage_name}"
    _, text, _ = outbox.render("review-notice", tracking=sub.tracking, headline="", greeting=person.name,
                               message=f"稿件《{sub.title}》（{sub.unit or '未知单位'}，编号 {sub.tracking}）已等待您"
                                       f"{task.stage_name} {waited} 个工作日{note}。",
                               detail="请直接回复本邮件，第一行写：通过；或 退回 + 原因；或 转 科普部/学会部/调宣部。",
                               organisation=settings.organisation)
    out = outbox.Outgoing(kind="review-reminder", mailbox=box.name, from_name=dept.sender_name or dept.name,
                          from_address=box.email, to_name=person.name, to_address=person.addresses[0], subject=subject,
                          text=text, html=None, date=ctx.now,
                          message_id=f"<mailbot.reminder.{sub.tracking}.{task.token}@{settings.mail_domain}>")
    outbox.enqueue(session, out, settings.outbox, ctx.now, submission_id=sub.id)
    log_event(session, "review-chased", f"{task.stage_name} {task.reviewer}: {waited} working days",
              submission_id=sub.id)
    return 1


def _escalate(session, ctx, sub, task, waited: int, note: str) -> int:
    settings = ctx.settings
    stages = settings.review.stages.get(sub.department, [])
    leaders = settings.review.escalate_to or (stages[-1].reviewers if stages else [])
    leaders = [who for who in leaders if who != task.reviewer]
    waiting_on = settings.reviewer(task.reviewer).name
    for who in leaders:
        person = settings.reviewer(who)
        _, text, _ = outbox.render("review-notice", tracking=sub.tracking, headline="", greeting=person.name,
                                   message=f"稿件《{sub.title}》（{sub.unit or '未知单位'}，编号 {sub.tracking}）在{waiting_on}处"
                                           f"等待{task.stage_name}已 {waited} 个工作日{note}，提醒后仍未处理，特此告知。",
                                   detail="", organisation=settings.organisation)
        _send(session, ctx, sub, person.addresses[0], f"[{sub.tracking}] 催办：稿件等待{task.stage_name}已 {waited} 个工作日",
              text, "review-escalation", None)
    log_event(session, "review-escalated", f"{task.stage_name} {task.reviewer} → {'、'.join(leaders) or '（无人可报）'}",
              submission_id=sub.id)
    return len(leaders)


def confirm_held(session: Session, ctx, inbound_id: int, operator: str) -> str:
    """The operator vouches for a held reply: its decision is applied as if the sender were
    on the reviewer's list (the token must still be valid and the review still open)."""
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
    _decide(session, ctx, row, sub, task, command, review.Verdict("decide", command.decision), sender)
    return f"已执行：{WORDS[command.decision]}（稿件 {sub.tracking}）"
