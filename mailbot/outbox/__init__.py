"""The one way out: every e-mail the robot sends is built by `letter()` from template files
(templates/<name>.subject.j2, .txt.j2, optional .html.j2 and .from.j2), written to the
outbox table in the transaction of the change that causes it, and sent by `drain()`.
Message-ID, threading and the RFC 3834 headers are set here and nowhere else.

A row is sent at most once: it is marked 'sending' (committed) before the SMTP
conversation and 'sent' after; a row found 'sending' after a crash is 'uncertain' and
left for the operator rather than sent again. Server down or 4xx: retried with backoff
until `give_up_after_hours`; 5xx: failed at once. All headers are UTF-8 (RFC 2047 for
names and subjects), with our Message-ID, Auto-Submitted and X-Auto-Response-Suppress.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Sequence

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func
from sqlmodel import Session, select

from mailbot import clock
from mailbot.models import aware as _aware
from mailbot.store import OutboxMessage, log_event

log = logging.getLogger("mailbot.outbox")
TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                   autoescape=select_autoescape(["html", "html.j2"]), trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=True)


@dataclass(frozen=True)
class Outgoing:
    """One message to send, before it is rendered to bytes."""

    kind: str
    mailbox: str
    from_name: str
    from_address: str
    to_name: str
    to_address: str
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    attachments: tuple[tuple[str, bytes, str], ...] = field(default=(), repr=False)  # name, data, type
    related: tuple[tuple[str, bytes, str], ...] = field(default=(), repr=False)  # inline: cid, data, type


def render(template: str, **context) -> tuple[str, str, str | None]:
    """(subject, text, html) from templates/<template>.subject.j2, .txt.j2 and .html.j2."""
    subject = _env.get_template(f"{template}.subject.j2").render(**context).strip()
    text = _env.get_template(f"{template}.txt.j2").render(**context)
    html_path = TEMPLATES / f"{template}.html.j2"
    html = _env.get_template(f"{template}.html.j2").render(**context) if html_path.exists() else None
    return " ".join(subject.split()), text, html


def new_message_id(kind: str, tag: str, domain: str, token: str | None = None) -> str:
    """Our own Message-ID: <mailbot.KIND.TAG.TOKEN@domain> (routing recognises the prefix)."""
    token = token or secrets.token_hex(8)
    return f"<mailbot.{kind}.{tag}.{token}@{domain}>"


# The Message-ID's second word per kind, where it is not the kind itself. Replies are read
# by these: routing knows form/formreply (a campaign's thread), review knows review/reminder
# (the token after the tracking number), and digest (a reply to the weekly digest).
ID_PREFIX = {"review-request": "review", "review-reminder": "reminder", "form-reminder": "form",
             "form-missing": "missing", "form-reply": "formreply", "review-reason": "reminder"}


def office_values(settings) -> dict:
    """What any template may say about the office: its name, its departments' names (the
    reroute choices, 转 科普部 …) and the department people are told to contact."""
    contact = settings.contact()
    return {"organisation": settings.organisation, "department_names": [d.name for d in settings.departments],
            "contact": contact.name if contact else None}


def letter(kind: str, template: str | None = None, *, settings, to: str, now: datetime, tag: str,
           from_department: str | None = None, mailbox: str | None = None, from_name: str | None = None,
           from_address: str | None = None, to_name: str = "", id_token: str | None = None,
           answering: str | None = None, answering_refs: Sequence[str] = (),
           thread: Sequence[str] = (), answering_subject: str | None = None,
           attachments: tuple[tuple[str, bytes, str], ...] = (),
           related: tuple[tuple[str, bytes, str], ...] = (), **values) -> Outgoing:
    """One outgoing message, rendered from templates/<template>.* (default: the kind).

    Args:
        kind: the outbox row's kind (daily caps, `mailbot show`, the Message-ID's prefix).
        settings: the office's settings; the templates also see `office_values(settings)`.
        to, to_name: the recipient.
        now: the Date header.
        tag, id_token: the Message-ID is <mailbot.PREFIX.TAG.TOKEN@mail_domain>, TOKEN
            random unless given (a review token, which replies bring back; golden files).
        from_department: the key of the department the letter is from: its mailbox sends,
            its sender name shows; `mailbox` and `from_name` override, and a
            <template>.from.j2, when there is one, names the sender.
        from_address: shown instead of the mailbox's address (a plus address for replies).
        answering, answering_refs: the Message-ID and References of the mail this answers;
            the letter is threaded under it and marked auto-replied.
        thread: the Message-IDs of the conversation this letter continues, oldest first
            (`thread()`): In-Reply-To is the last, References all of them.
        answering_subject: the subject of the sender's own mail, which this letter answers
            (回复：their subject【ours】).
        values: what the templates show: names, numbers, lists, flags; never sentences.
    """
    dept = settings.department(from_department) if from_department else None
    box = settings.mailbox(mailbox or (dept.mailbox if dept else None) or settings.mailboxes[0].name)
    context = {**office_values(settings), **values}
    subject, text, html = render(template or kind, **context)
    if thread and not answering:
        answering, answering_refs = thread[-1], tuple(thread[:-1])
    if answering_subject and answering_subject.strip():
        theirs = re.sub(r"^\s*(?:(?:re|fw|fwd|回复|答复|转发)\s*[:：]\s*)+", "", answering_subject.strip(), flags=re.I)
        theirs = re.sub(r"\s*【[^【】]*】\s*$", "", theirs)  # our part of an earlier answer
        subject = f"回复：{theirs}【{subject}】"
    named = TEMPLATES / f"{template or kind}.from.j2"
    if named.exists():
        from_name = " ".join(_env.get_template(named.name).render(**context).split())
    elif from_name is None:
        from_name = (dept.sender_name or dept.name) if dept else settings.organisation
    refs = tuple(answering_refs) + ((answering,) if answering else ())
    return Outgoing(kind=kind, mailbox=box.name, from_name=from_name, from_address=from_address or box.email,
                    to_name=to_name, to_address=to, subject=subject, text=text, html=html,
                    message_id=new_message_id(ID_PREFIX.get(kind, kind), tag, settings.mail_domain, id_token),
                    date=now, in_reply_to=answering, references=refs,
                    attachments=attachments, related=related)


def build(out: Outgoing) -> bytes:
    """The message as it leaves: UTF-8 everywhere, a boundary derived from the Message-ID
    so the same message renders to the same bytes (golden files)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((out.from_name, out.from_address), charset="utf-8")
    msg["To"] = formataddr((out.to_name, out.to_address), charset="utf-8") if out.to_name else out.to_address
    msg["Subject"] = out.subject
    msg["Date"] = format_datetime(out.date)
    msg["Message-ID"] = out.message_id
    if out.in_reply_to:
        msg["In-Reply-To"] = out.in_reply_to
    if out.references:
        msg["References"] = " ".join(out.references[-20:])
    msg["Auto-Submitted"] = "auto-replied" if out.in_reply_to else "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    for name, value in out.extra_headers:
        msg[name] = value
    msg.set_content(out.text, charset="utf-8", cte="base64")
    if out.html is not None:
        msg.add_alternative(out.html, subtype="html", charset="utf-8", cte="base64")
        html_part = msg.get_payload()[-1]
        for cid, data, mime in out.related:  # images the HTML shows as src="cid:…"
            maintype, _, subtype = mime.partition("/")
            html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                  disposition="inline", filename=f"{cid.split('@')[0]}.{subtype}")
    for name, data, mime in out.attachments:
        maintype, _, subtype = (mime or "application/octet-stream").partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    seed = hashlib.sha256(out.message_id.encode()).hexdigest()[:24]
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_mailbot_{seed}" + (f"_{i}" if i else ""))
    return msg.as_bytes()


def thread(session: Session, submission_id: int | None, to: str, first: Sequence[str] = ()) -> tuple[str, ...]:
    """The conversation a new letter about a 稿件 to `to` continues, oldest first: `first`
    (the unit's own messages, for letters to the unit), then every earlier letter to that
    address about the 稿件 (receipt, forwards, reminders, notices)."""
    ids = list(first)
    if submission_id is not None:
        ids += session.exec(select(OutboxMessage.message_id).where(
            OutboxMessage.submission_id == submission_id, OutboxMessage.to_address == to.strip().lower())
            .order_by(OutboxMessage.id)).all()
    return tuple(dict.fromkeys(i for i in ids if i))


# Answers to whoever wrote to us are capped (loops, floods); mail to our own reviewers is not.
CAPPED_KINDS = {"receipt", "review-notice", "result", "form-reply"}
OWED_ALWAYS = {"result"}  # 退回/通过 go to the 稿件's own sender: a review decided it, no loop can
OWED_TO_ROSTER = {"receipt", "form-reply"}  # receipts and form replies to the roster's units


def owed(kind: str, to_roster: bool) -> bool:
    """Is this mail owed to its recipient, so that the daily cap never holds it back?
    Results of review always are; receipts and form replies when the recipient is a roster
    unit. What is left capped: answers to unknown senders, and notices (loops, floods)."""
    return kind in OWED_ALWAYS or (to_roster and kind in OWED_TO_ROSTER)


def sent_recently(session: Session, address: str, now: datetime) -> int:
    return session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.to_address == address.lower(), OutboxMessage.created_at > now - timedelta(days=1))).one()


def enqueue(session: Session, out: Outgoing, cfg, now: datetime, submission_id: int | None = None,
            inbound_id: int | None = None, capped: bool | None = None) -> OutboxMessage | None:
    """Write one message to the outbox (caller commits). None when the daily cap for that
    address is reached: a loop or a flood is stopped here, and the event is recorded.
    `capped`: whether the cap applies (callers pass `not owed(...)`); by default, for the
    kinds in CAPPED_KINDS."""
    if capped is None:
        capped = out.kind in CAPPED_KINDS
    count = sent_recently(session, out.to_address, now) if capped else 0
    if capped and count >= cfg.daily_cap_per_sender:
        log_event(session, "outbox-cap", f"{out.kind} to {out.to_address} not sent: {count} in 24 h "
                                         f"(cap {cfg.daily_cap_per_sender}): {out.subject}",
                  inbound_id=inbound_id, submission_id=submission_id)
        return None
    row = OutboxMessage(kind=out.kind, mailbox=out.mailbox, to_address=out.to_address.lower(),
                        subject=out.subject, message_id=out.message_id, raw=build(out), next_attempt_at=now,
                        give_up_at=now + timedelta(hours=cfg.give_up_after_hours),
                        submission_id=submission_id, inbound_id=inbound_id, created_at=now)
    session.add(row)
    return row


# --- sending -------------------------------------------------------------------------


@dataclass
class DrainCounts:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0

    def add(self, other: "DrainCounts") -> None:
        for name in ("sent", "retry", "failed", "uncertain"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _claim(engine, now: datetime, lease: float, limit: int = 50) -> tuple[list[int], int]:
    """Mark due rows 'sending' (committed before any SMTP), and stale 'sending' rows uncertain."""
    with Session(engine) as session:
        stale = session.exec(select(OutboxMessage).where(
            OutboxMessage.status == "sending",
            OutboxMessage.sending_at < now - timedelta(seconds=lease))).all()
        for row in stale:
            row.status = "uncertain"
            row.last_error = "发送过程中断（程序退出），无法确定对方是否已收到；为避免重复发送，没有自动重发，请人工确认"
            log_event(session, "outbox-uncertain", f"outbox {row.id} to {row.to_address}")
        rows = session.exec(select(OutboxMessage).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)).all()
        for row in rows:
            row.status = "sending"
            row.sending_at = now
            row.attempts += 1
        ids = [r.id for r in rows]
        session.commit()
        return ids, len(stale)


async def drain(engine, settings, now: datetime | None = None) -> DrainCounts:
    """Send every due outbox row once; record each outcome. Returns the counts."""
    counts = DrainCounts()
    cfg = settings.outbox
    while True:
        stamp = now or clock.now()
        ids, stale = _claim(engine, stamp, cfg.sending_lease)
        counts.uncertain += stale
        if not ids:
            return counts
        for outbox_id in ids:
            outcome = await _send_one(engine, settings, outbox_id, stamp)
            setattr(counts, outcome, getattr(counts, outcome) + 1)


async def _send_one(engine, settings, outbox_id: int, now: datetime) -> str:
    with Session(engine) as session:
        row = session.get(OutboxMessage, outbox_id)
        box = settings.mailbox(row.mailbox)
        raw, to = row.raw, row.to_address
    error, permanent = None, False
    try:
        await aiosmtplib.send(raw, sender=box.email, recipients=[to], hostname=box.smtp_server,
                              port=box.smtp_port, use_tls=box.smtp_tls == "implicit",
                              start_tls=True if box.smtp_tls == "starttls" else False,
                              username=box.user if box.smtp_auth else None,
                              password=box.password() if box.smtp_auth else None,
                              timeout=settings.outbox.timeout)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        error, permanent = f"收件人被拒绝（{'；'.join(f'{r.code} {r.message}' for r in exc.recipients)}）", \
            all(c >= 500 for c in codes)
    except aiosmtplib.SMTPAuthenticationError as exc:
        error = f"SMTP 登录失败（{exc.code}），请检查邮箱 {box.name} 的授权码"
    except aiosmtplib.SMTPResponseException as exc:
        error, permanent = f"SMTP 服务器拒绝（{exc.code} {exc.message}）", exc.code >= 500
    except ValueError as exc:  # an address the SMTP client refuses to send to
        error, permanent = f"收件地址无法使用（{exc}）", True
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        error = f"无法连接 SMTP 服务器 {box.smtp_server}:{box.smtp_port}（{type(exc).__name__}）"
    return _record(engine, settings.outbox, outbox_id, now, error, permanent)


def _record(engine, cfg, outbox_id: int, now: datetime, error: str | None, permanent: bool) -> str:
    with Session(engine) as session:
        row = session.get(OutboxMessage, outbox_id)
        row.sending_at = None
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", clock.now(), None
            session.commit()
            return "sent"
        row.last_error = error
        give_up = now >= _aware(row.give_up_at)
        if permanent or give_up:
            row.status = "failed"
            log_event(session, "outbox-failed", f"outbox {row.id} to {row.to_address}: {error}")
            session.commit()
            return "failed"
        delay = min(cfg.retry_initial * 2 ** (row.attempts - 1), cfg.retry_max)
        row.status, row.next_attempt_at = "pending", now + timedelta(seconds=delay)
        log.warning("outbox %s to %s: %s; retry in %.0fs", row.id, row.to_address, error, delay)
        session.commit()
        return "retry"


def next_due(engine) -> datetime | None:
    """When the next pending row is due (for the drainer's sleep)."""
    with Session(engine) as session:
        value = session.exec(select(func.min(OutboxMessage.next_attempt_at))
                             .where(OutboxMessage.status == "pending")).one()
    return _aware(value) if value else None


def mark_bounced(session: Session, message_ids: list[str], why: str) -> list[int]:
    """A bounce of our own mail: the outbox rows it names become failed, visibly."""
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.message_id.in_(message_ids))).all()
    for row in rows:
        row.status = "failed"
        row.last_error = f"对方邮件服务器退信：{why}"
        log_event(session, "outbox-bounced", f"outbox {row.id} to {row.to_address}: {why}")
    return [r.id for r in rows]
