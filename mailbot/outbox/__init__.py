"""The one way out: every e-mail the robot sends is built by `letter()` from template files
(templates/<name>.subject.j2, .txt.j2, optional .html.j2 and .from.j2), written to the
outbox table in the transaction of the change that causes it, and sent by `drain()`.
Message-ID, threading and the RFC 3834 headers are set here and nowhere else.

A row is sent at most once: it is marked 'sending' (committed) just before its SMTP
conversation and 'sent' after, one row at a time over one connection per sending mailbox, so
after a crash only the letter that was on the wire can be in doubt; a row found 'sending'
after a crash is 'uncertain' and left for the operator rather than sent again. Server down or 4xx: retried with backoff
until `give_up_after_hours`; 5xx: failed at once. All headers are UTF-8 (RFC 2047 for
names and subjects), with our Message-ID, Auto-Submitted and X-Auto-Response-Suppress.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Sequence

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import bindparam, func, update
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from mailbot import clock
from mailbot.models import aware as _aware
from mailbot.outbox.fold import fold_words
from mailbot.store import OutboxMessage, add_row, log_event

log = logging.getLogger("mailbot.outbox")
TEMPLATES = Path(__file__).parent / "templates"
# auto_reload off: no stat of each template file per letter (5 a receipt); an edited template
# is read again on the robot's reload (SIGHUP, `forget_templates`) or restart
_env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                   autoescape=select_autoescape(["html", "html.j2"]), trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=True, auto_reload=False)


def forget_templates() -> None:
    """Read the template files again at their next use (after someone edited one)."""
    _env.cache.clear()
    _exists.cache_clear()


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


@functools.lru_cache(maxsize=None)
def _exists(name: str) -> bool:
    """Whether templates/<name> exists (the package's templates do not change while it runs)."""
    return (TEMPLATES / name).exists()


def render(template: str, **context) -> tuple[str, str, str | None]:
    """(subject, text, html) from templates/<template>.subject.j2, .txt.j2 and .html.j2."""
    subject = _env.get_template(f"{template}.subject.j2").render(**context).strip()
    text = _env.get_template(f"{template}.txt.j2").render(**context)
    html = _env.get_template(f"{template}.html.j2").render(**context) if _exists(f"{template}.html.j2") else None
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


def office_values(settings, department: str | None = None) -> dict:
    """What any template may say about the office: its name, its departments' names (the
    reroute choices, 转 + each configured department), the department people are told to
    contact, and the person to call (联系人/电话: the sending department's, else the office's)."""
    contact = settings.contact()
    person = settings.contact_person(department)
    return {"organisation": settings.organisation, "department_names": [d.name for d in settings.departments],
            "contact": contact.name if contact else None,
            "contact_person": person.model_dump() if person else None}


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
    sending = dept or next((d for d in settings.departments if d.mailbox == box.name), None)
    context = {**office_values(settings, sending.key if sending else None), **values}
    subject, text, html = render(template or kind, **context)
    if thread and not answering:
        answering, answering_refs = thread[-1], tuple(thread[:-1])
    if answering_subject and answering_subject.strip():
        theirs = re.sub(r"^\s*(?:(?:re|fw|fwd|回复|答复|转发)\s*[:：]\s*)+", "", answering_subject.strip(), flags=re.I)
        theirs = re.sub(r"\s*【[^【】]*】\s*$", "", theirs)  # our part of an earlier answer
        subject = f"回复：{theirs}【{subject}】"
    named = f"{template or kind}.from.j2"
    if _exists(named):
        from_name = " ".join(_env.get_template(named).render(**context).split())
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
    so the same message renders to the same bytes (golden files).

    Letters without files (receipts, notices: nearly all mail) are assembled directly,
    byte for byte what the stdlib's EmailMessage writes for them (tests/unit/test_outbox_build.py
    compares the two) at a tenth of the cost; letters with files go the generic way."""
    if out.attachments or out.related:
        return _build_spliced(out)
    return _build_direct(out)


def _headers(out: Outgoing) -> list[tuple[str, str]]:
    headers = [("From", formataddr((out.from_name, out.from_address), charset="utf-8")),
               ("To", formataddr((out.to_name, out.to_address), charset="utf-8") if out.to_name else out.to_address),
               ("Subject", out.subject), ("Date", format_datetime(out.date)), ("Message-ID", out.message_id)]
    if out.in_reply_to:
        headers.append(("In-Reply-To", out.in_reply_to))
    if out.references:
        headers.append(("References", " ".join(out.references[-20:])))
    headers += [("Auto-Submitted", "auto-replied" if out.in_reply_to else "auto-generated"),
                ("X-Auto-Response-Suppress", "All"), ("Precedence", "auto_reply")]
    return headers + list(out.extra_headers)


def _build_generic(out: Outgoing, marks: Sequence[str] = ()) -> bytes:
    """The message as the stdlib's EmailMessage writes it. With `marks`, the bodies of the
    inline images, then of the attachments, are those markers instead (`_build_spliced`)."""
    msg = EmailMessage(policy=SMTP)
    for name, value in _headers(out):
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
    if marks:
        files = [p for p in msg.walk() if p.get("Content-Disposition")]  # images first, then attachments
        for part, mark in zip(files, marks, strict=True):
            part.set_payload(mark + "\n")
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(_boundary(out) + (f"_{i}" if i else ""))
    return msg.as_bytes()


_MARK = "@@mailbot-file-{}@@"


def _build_spliced(out: Outgoing) -> bytes:
    """Letters with files: the stdlib writes the structure and every header, each file's
    body is a marker there, and the files' base64 is spliced in at the markers, encoded a
    slice at a time. The same bytes as `_build_generic`; memory for a 30 MB file is the file,
    its base64 and the message once each, not the stdlib's several copies of each."""
    files = [data for _cid, data, _mime in out.related] + [data for _name, data, _mime in out.attachments]
    marks = [_MARK.format(i) for i in range(len(files))]
    light = replace(out, related=tuple((cid, b"", mime) for cid, _data, mime in out.related),
                    attachments=tuple((name, b"", mime) for name, _data, mime in out.attachments))
    skeleton = _build_generic(light, marks)
    pieces: list[bytes] = []
    rest = 0
    for mark, data in zip(marks, files):
        at = skeleton.index(mark.encode("ascii") + b"\r\n", rest)
        pieces.append(skeleton[rest:at])
        pieces += _base64_crlf(data)
        rest = at + len(mark) + 2
    pieces.append(skeleton[rest:])
    return b"".join(pieces)


def _base64_crlf(data: bytes, step: int = 57 * 1024) -> list[bytes]:
    """base64 in 76-column CRLF lines, as the stdlib's content manager writes it, a slice at a time."""
    view = memoryview(data)
    return [base64.encodebytes(view[i:i + step]).replace(b"\n", b"\r\n") for i in range(0, len(data), step)]


def _boundary(out: Outgoing) -> str:
    return "=_mailbot_" + hashlib.sha256(out.message_id.encode()).hexdigest()[:24]


# Values the stdlib writes back unchanged: printable ASCII words, single spaces, no encoded-word.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_VERBATIM = {"Date", "Message-ID", "In-Reply-To", "References", "Auto-Submitted", "X-Auto-Response-Suppress",
             "Precedence"}


def _fold(name: str, value: str) -> bytes:
    """One header line as policy SMTP folds it."""
    if (name in _VERBATIM and len(name) + 2 + len(value) <= SMTP.max_line_length and "=?" not in value
            and _PLAIN.fullmatch(value)):
        return f"{name}: {value}\r\n".encode("ascii")
    if name == "Subject" and (folded := fold_words(name, value)) is not None:
        return folded  # the same bytes, without the stdlib's encode-and-shrink loop (outbox/fold.py)
    return _fold_slow(name, value)


@functools.lru_cache(maxsize=512)  # the From of each department, repeated on every letter
def _fold_slow(name: str, value: str) -> bytes:
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


def _text_part(text: str, subtype: str) -> bytes:
    """A text/<subtype> part's headers' tail and body: UTF-8, base64 in 76-column CRLF lines
    (the stdlib's set_content first turns every line break into CRLF)."""
    lines = text.encode("utf-8").splitlines()
    body = b"\r\n".join(lines) + b"\r\n"
    encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii")
            + b"Content-Transfer-Encoding: base64\r\n"), encoded


def _build_direct(out: Outgoing) -> bytes:
    head = b"".join(_fold(name, value) for name, value in _headers(out))
    text_head, text_body = _text_part(out.text, "plain")
    if out.html is None:
        return head + text_head + b"MIME-Version: 1.0\r\n\r\n" + text_body
    html_head, html_body = _text_part(out.html, "html")
    boundary = _boundary(out).encode("ascii")
    return b"".join((
        head, b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"", boundary, b'"\r\n',
        b"\r\n--", boundary, b"\r\n", text_head, b"\r\n", text_body,
        b"\r\n--", boundary, b"\r\n", html_head, b"MIME-Version: 1.0\r\n\r\n", html_body,
        b"\r\n--", boundary, b"--\r\n"))


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


_RECENT = "mailbot.outbox.recent"  # session.info key: (now, {address: rows in the 24 h before now})


def sent_recently(session: Session, address: str, now: datetime) -> int:
    """Outbox rows to `address` created in the 24 hours before `now` (any kind). Within a
    batch (`count_recent`) the figure comes from the batch's one query, kept current."""
    address = address.lower()
    known = session.info.get(_RECENT)
    if known is not None and known[0] == now and address in known[1]:
        return known[1][address]
    return session.exec(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.to_address == address, OutboxMessage.created_at > now - timedelta(days=1))).one()


def count_recent(session: Session, addresses, now: datetime) -> None:
    """Count the last 24 hours' rows for a whole batch's addresses in one query; `enqueue`
    then caps from these figures (and adds what it queues) instead of one query per letter.
    Lives as long as the session (one transaction's batch)."""
    wanted = sorted({a.lower() for a in addresses if a})
    counts = dict.fromkeys(wanted, 0)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        counts.update(session.exec(
            select(OutboxMessage.to_address, func.count()).where(
                OutboxMessage.to_address.in_(chunk), OutboxMessage.created_at > now - timedelta(days=1))
            .group_by(OutboxMessage.to_address)).all())
    session.info[_RECENT] = (now, counts)


QUEUED = "mailbot.outbox.queued"  # session.info key: letters this session has queued


def enqueue(session: Session, out: Outgoing, cfg, now: datetime, submission_id: int | None = None,
            inbound_id: int | None = None, capped: bool | None = None) -> bool | None:
    """Write one message to the outbox (caller commits; the row is INSERTed before the
    session's next statement, see `store.add_row`). None when the daily cap for that
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
    known = session.info.get(_RECENT)
    if known is not None and known[0] == now and out.to_address.lower() in known[1]:
        known[1][out.to_address.lower()] += 1  # what the count query would now also see
    add_row(session, _OUTBOX, dict(
        kind=out.kind, mailbox=out.mailbox, to_address=out.to_address.lower(), subject=out.subject,
        message_id=out.message_id, raw=build(out), status="pending", attempts=0, next_attempt_at=now,
        give_up_at=now + timedelta(hours=cfg.give_up_after_hours), sending_at=None, sent_at=None, last_error=None,
        submission_id=submission_id, inbound_id=inbound_id, created_at=now))
    session.info[QUEUED] = session.info.get(QUEUED, 0) + 1
    return True


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


_STALE = "发送过程中断（程序退出），无法确定对方是否已收到；为避免重复发送，没有自动重发，请人工确认"


def _mark_stale(engine, now: datetime, lease: float) -> int:
    """Rows left 'sending' longer than the lease (a crash mid-send) become uncertain."""
    with Session(engine) as session:
        stale = session.exec(select(OutboxMessage).options(defer(OutboxMessage.raw)).where(
            OutboxMessage.status == "sending",
            OutboxMessage.sending_at < now - timedelta(seconds=lease))).all()
        for row in stale:
            row.status = "uncertain"
            row.last_error = _STALE
            log_event(session, "outbox-uncertain", f"outbox {row.id} to {row.to_address}")
        session.commit()
        return len(stale)


def _due(engine, now: datetime, limit: int = 500) -> list[tuple[int, str]]:
    """(id, mailbox) of the rows due now, oldest first; nothing is claimed yet."""
    with Session(engine) as session:
        return [tuple(r) for r in session.exec(select(OutboxMessage.id, OutboxMessage.mailbox).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id).limit(limit)).all()]


_OUTBOX = OutboxMessage.__table__


def _claim_one(conn, outbox_id: int, now: datetime) -> tuple[bytes, str] | None:
    """Mark one due row 'sending', committed before its SMTP conversation, so that only
    the message on the wire can be in doubt after a crash. None if another drainer took it.
    `conn`: the drain round's connection (plain statements, no ORM session per letter)."""
    with conn.begin():
        claimed = conn.execute(_CLAIM, {"_id": outbox_id, "_at": now}).rowcount
        if claimed != 1:
            return None
        got = conn.execute(_LETTER, {"_id": outbox_id}).first()
    return (got[0], got[1]) if got else None


# built once (a statement built per letter cost more than its SQL)
_CLAIM = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("_id"), _OUTBOX.c.status == "pending",
                                _OUTBOX.c.next_attempt_at <= bindparam("_at"))
          .values(status="sending", sending_at=bindparam("_at"), attempts=_OUTBOX.c.attempts + 1))
# no RETURNING of the bytes in the claim: SQLite would hold a 40 MB letter in a temporary table too
_LETTER = select(_OUTBOX.c.raw, _OUTBOX.c.to_address).where(_OUTBOX.c.id == bindparam("_id"))
_SENT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("_id"))
         .values(status="sent", sent_at=bindparam("_sent"), last_error=None, sending_at=None))


_STREAM_FROM = 1 << 20  # letters this large go out a slice at a time (`_sendmail`)
_SLICE = 1 << 20
_UNCLEAN = re.compile(rb"\r(?!\n)|(?<!\r)\n|\n\.")  # a lone CR or LF, or a line starting with "."


async def _sendmail(client: aiosmtplib.SMTP, sender: str, to: str, raw: bytes, timeout: float) -> None:
    """Send one message over an open connection. A large one (a 稿件's files forwarded
    to a reviewer: 40 MB) is written straight from the stored bytes, a slice at a time:
    aiosmtplib's sendmail makes four whole copies of it first (line ends, dot-stuffing,
    the terminator, the size). Our own letters need neither change (CRLF throughout, and no
    line starts with "."); anything else goes through sendmail."""
    if len(raw) < _STREAM_FROM or raw.startswith(b".") or _UNCLEAN.search(raw):
        await client.sendmail(sender, [to], raw)
        return
    protocol = client.protocol
    ends = raw.endswith(b"\r\n")
    options = [f"SIZE={len(raw) + (0 if ends else 2)}"] if client.supports_extension("size") else []
    try:
        await client.mail(sender, options=options, timeout=timeout)
        await client.rcpt(to, timeout=timeout)
    except aiosmtplib.SMTPResponseException as exc:
        try:
            await client.rset(timeout=timeout)
        except (ConnectionError, aiosmtplib.SMTPResponseException):
            pass
        if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
            raise aiosmtplib.SMTPRecipientsRefused([exc]) from None
        raise
    # DATA as aiosmtplib's execute_data_command sends it (aiosmtplib 5.1, pinned), the body sliced
    async with protocol._command_lock:
        protocol._response_pending = True
        protocol.write(b"DATA\r\n")
        start = await protocol.read_response(timeout=timeout)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol._response_pending = True
        view = memoryview(raw)
        for i in range(0, len(raw), _SLICE):
            protocol.write(view[i:i + _SLICE])
            await protocol._drain_helper()  # the transport's buffer stays below a slice or two
        protocol.write(b".\r\n" if ends else b"\r\n.\r\n")
        done = await protocol.read_response(timeout=timeout)
        if done.code != 250:
            raise aiosmtplib.SMTPDataError(done.code, done.message)


class _Connection:
    """One SMTP connection per sending mailbox for one drain round: opened at the first
    message, reused for the next ones, opened again after the server dropped it. When it
    cannot be opened, the round's other messages for that mailbox get the same error
    without another attempt (each retried later with its own backoff)."""

    def __init__(self, settings, box):
        self.settings, self.box = settings, box
        self.client: aiosmtplib.SMTP | None = None
        self.down: str | None = None

    async def _open(self) -> None:
        box = self.box
        self.client = aiosmtplib.SMTP(hostname=box.smtp_server, port=box.smtp_port,
                                      use_tls=box.smtp_tls == "implicit",
                                      start_tls=True if box.smtp_tls == "starttls" else False,
                                      username=box.user if box.smtp_auth else None,
                                      password=box.password() if box.smtp_auth else None,
                                      timeout=self.settings.outbox.timeout)
        await self.client.connect()

    async def send(self, raw: bytes, to: str) -> tuple[str | None, bool]:
        """(error, permanent) for one message; (None, False) when the server took it."""
        box = self.box
        if self.down is not None:
            return self.down, False
        if self.client is None or not self.client.is_connected:
            try:
                await self._open()
            except aiosmtplib.SMTPAuthenticationError as exc:
                self.down = f"SMTP 登录失败（{exc.code}），请检查邮箱 {box.name} 的授权码"
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                self.down = f"无法连接 SMTP 服务器 {box.smtp_server}:{box.smtp_port}（{type(exc).__name__}）"
            if self.down is not None:
                await self.close()
                return self.down, False
        try:
            await _sendmail(self.client, box.email, to, raw, self.settings.outbox.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return (f"收件人被拒绝（{'；'.join(f'{r.code} {r.message}' for r in exc.recipients)}）",
                    all(c >= 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not self.client.is_connected:
                await self.close()
            return f"SMTP 服务器拒绝（{exc.code} {exc.message}）", exc.code >= 500
        except ValueError as exc:  # an address the SMTP client refuses to send to
            return f"收件地址无法使用（{exc}）", True
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self.close()
            return f"无法连接 SMTP 服务器 {box.smtp_server}:{box.smtp_port}（{type(exc).__name__}）", False
        return None, False

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            client.close()


async def drain(engine, settings, now: datetime | None = None) -> DrainCounts:
    """Send every due outbox row once, one SMTP connection per sending mailbox; each row is
    claimed just before it is sent and its outcome recorded just after. Returns the counts."""
    counts = DrainCounts()
    cfg = settings.outbox
    connections: dict[str, _Connection] = {}
    conn = engine.connect()
    try:
        while True:
            stamp = now or clock.now()
            counts.uncertain += _mark_stale(engine, stamp, cfg.sending_lease)
            due = _due(engine, stamp)
            if not due:
                return counts
            for outbox_id, mailbox in due:
                claimed = _claim_one(conn, outbox_id, stamp)
                if claimed is None:
                    continue
                raw, to = claimed
                if mailbox not in connections:
                    connections[mailbox] = _Connection(settings, settings.mailbox(mailbox))
                error, permanent = await connections[mailbox].send(raw, to)
                del raw, claimed  # a 40 MB letter is not held while its outcome is written
                outcome = _record(engine, conn, cfg, outbox_id, stamp, error, permanent)
                setattr(counts, outcome, getattr(counts, outcome) + 1)
    finally:
        conn.close()
        for connection in connections.values():
            await connection.close()


def _record(engine, conn, cfg, outbox_id: int, now: datetime, error: str | None, permanent: bool) -> str:
    if error is None:
        with conn.begin():
            conn.execute(_SENT, {"_id": outbox_id, "_sent": clock.now()})
        return "sent"
    with Session(engine) as session:
        row = session.get(OutboxMessage, outbox_id, options=[defer(OutboxMessage.raw)])  # not 40 MB again
        row.sending_at = None
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


def sending_state(session: Session) -> dict:
    """What `status` shows of sending: how many letters wait, and, when the last attempts
    failed, the last error and since when the oldest of the waiting letters has been failing."""
    waiting = session.exec(select(func.count()).select_from(OutboxMessage)
                           .where(OutboxMessage.status.in_(("pending", "sending")))).one()
    failing = session.exec(select(OutboxMessage.last_error, OutboxMessage.created_at)
                           .where(OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))
                           .order_by(OutboxMessage.id)).all()
    last = session.exec(select(OutboxMessage.last_error).where(
        OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))
        .order_by(OutboxMessage.id.desc()).limit(1)).first()
    return {"ok": not failing, "waiting": waiting, "failing": len(failing), "last_error": last,
            "failing_since": _aware(failing[0][1]) if failing else None}


def next_due(engine) -> datetime | None:
    """When the next pending row is due (for the drainer's sleep)."""
    with Session(engine) as session:
        value = session.exec(select(func.min(OutboxMessage.next_attempt_at))
                             .where(OutboxMessage.status == "pending")).one()
    return _aware(value) if value else None


def mark_bounced(session: Session, message_ids: list[str], why: str) -> list[int]:
    """A bounce of our own mail: the outbox rows it names become failed, visibly."""
    rows = session.exec(select(OutboxMessage).options(defer(OutboxMessage.raw))
                        .where(OutboxMessage.message_id.in_(message_ids))).all()
    for row in rows:
        row.status = "failed"
        row.last_error = f"对方邮件服务器退信：{why}"
        log_event(session, "outbox-bounced", f"outbox {row.id} to {row.to_address}: {why}")
    return [r.id for r in rows]
