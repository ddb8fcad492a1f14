"""Messages waiting for a person: review replies and revisions the robot would not act on
by itself (an address not on the reviewer's list, a DMARC/DKIM failure, more than one
sender, files for a 稿件 from someone who is not its unit). The operator lists them
(`mailbot review held`), vouches for one (`confirm`: it is applied as if the sender were
entitled) or turns it down (`reject`, with a reason the sender is told).

Each hold is an event row (`review-hold`, `revision-hold`); confirming or rejecting adds
one (`held-confirmed`, `held-rejected`) with who did it, so the history shows both.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import Session, select

from mailbot import filing, reviewing
from mailbot.models import Route
from mailbot.office import Context
from mailbot.read.parse import parse
from mailbot.store import (
    Event,
    InboundMessage,
    Submission,
    log_event,
    stage_attachments,
)

HOLDS = ("review-hold", "revision-hold")
SETTLED = ("review-confirmed", "held-confirmed", "held-rejected")
KINDS = {"review-hold": "审核回复", "revision-hold": "修改稿"}


def held(session: Session) -> list[dict]:
    """What waits for the operator, oldest first: the message, its kind, who sent it, why, the 稿件."""
    rows = session.exec(select(Event).where(Event.kind.in_(HOLDS)).order_by(Event.id)).all()
    done = {e.inbound_id for e in session.exec(select(Event).where(Event.kind.in_(SETTLED))).all()}
    trackings = dict(session.exec(select(Submission.id, Submission.tracking).where(
        Submission.id.in_({e.submission_id for e in rows if e.submission_id}))).all()) if rows else {}
    return [{"inbound_id": e.inbound_id, "kind": e.kind, "what": KINDS[e.kind], "at": e.at, "actor": e.actor,
             "detail": e.detail, "reason": (e.detail or "").split(":")[0], "submission_id": e.submission_id,
             "tracking": trackings.get(e.submission_id)}
            for e in rows if e.inbound_id not in done]


def _find(session: Session, inbound_id: int) -> dict | None:
    return next((h for h in held(session) if h["inbound_id"] == inbound_id), None)


def confirm(session: Session, ctx: Context, inbound_id: int, operator: str) -> str:
    """Apply a held message as if its sender were entitled. Returns one line for the operator."""
    _lock(session, inbound_id)
    hold = _find(session, inbound_id)
    if hold is None:
        return "这封邮件不在待确认列表中"
    row = session.get(InboundMessage, inbound_id)
    mail = parse((ctx.storage / row.raw_path).read_bytes(), sha256=row.sha256)
    if hold["kind"] == "review-hold":
        # The reply's files belong to its decision, as if it had been accepted on arrival:
        # staged from the kept message only once the decision is sure to apply, placed once
        # as the reviewer's (never a revision), and what was not taken is removed.
        return reviewing.confirm_held(session, ctx, inbound_id, operator,
                                      files=lambda: _stage(mail, ctx, inbound_id, reviewer=True))
    staged = _stage(mail, ctx, inbound_id)
    try:
        sub = filing.file_resubmission(session, ctx, row, mail, Route.from_json(json.loads(row.route_json)), staged,
                                       vouched_by=operator)
    finally:
        _drop(staged)
    log_event(session, "held-confirmed", f"operator {operator} confirmed the revision from {hold['actor']}",
              inbound_id=inbound_id, submission_id=sub.id, actor=operator)
    row.outcome, row.outcome_reason = "filed", f"管理员 {operator} 确认后登记为稿件 {sub.tracking} 第{sub.revision}版"
    return f"已执行：登记为稿件 {sub.tracking} 的第{sub.revision}版"


def _lock(session: Session, inbound_id: int) -> None:
    """Take the held message's row for this transaction, so two operators settling the same
    message one after the other see the first one's answer (PostgreSQL: FOR UPDATE; SQLite
    has one writer at a time)."""
    session.exec(select(InboundMessage.id).where(InboundMessage.id == inbound_id).with_for_update()).first()


def _stage(mail, ctx: Context, inbound_id: int, reviewer: bool = False) -> tuple:
    """The held message's attachments, written again from the kept raw message into a
    staging folder of their own (a reviewer's inline images stay out, as on arrival)."""
    if reviewer:
        from dataclasses import replace

        mail = replace(mail, attachments=tuple(a for a in mail.attachments
                                               if not (a.disposition == "inline" and a.content_id)))
    folder = ctx.storage / "staging" / f"{inbound_id}-confirmed"
    staged = stage_attachments(mail, folder)
    return staged


def _drop(staged) -> None:
    for item in staged:  # what the use case did not take
        Path(item.path).unlink(missing_ok=True)


def reject(session: Session, ctx: Context, inbound_id: int, operator: str, reason: str = "") -> str:
    """Turn a held message down: nothing changes, and the sender is told politely."""
    _lock(session, inbound_id)
    hold = _find(session, inbound_id)
    if hold is None:
        return "这封邮件不在待确认列表中"
    sub = session.get(Submission, hold["submission_id"]) if hold["submission_id"] else None
    log_event(session, "held-rejected", f"operator {operator}: {reason or '-'}", inbound_id=inbound_id,
              submission_id=sub.id if sub else None, actor=operator)
    if (row := session.get(InboundMessage, inbound_id)) is not None:
        row.outcome, row.outcome_reason = "answered", f"管理员 {operator} 未采用：{reason or '未说明'}，已告知发件人"
    if hold["actor"] and "@" in hold["actor"]:
        what = "修改稿" if hold["kind"] == "revision-hold" else "审核意见"
        reviewing.notice(session, ctx, sub, hold["actor"], "held-rejected", what=what, reason=reason)
    return f"已拒绝：{hold['what']}（{hold['tracking'] or '无稿件编号'}），已告知发件人"
