"""Use cases over stored mail: keep a raw message (deduplicated), process what is pending,
replay a file. Later issues hang routing, filing, review and forms off `process_one`.

Order is the whole point: raw bytes on disk and a row in the database first; parsing
and everything after it work from the stored copy, so a crash at any step loses nothing
and a re-run picks up exactly what is left.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from . import parse as parser
from .models import RawMail
from .store import InboundMessage, MessageCopy, RawStore, find_by_key, log_event, utcnow

log = logging.getLogger("mailbot.pipeline")


@dataclass
class Counts:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    parsed: int = 0
    quarantined: int = 0
    fetch_failed: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: "Counts") -> None:
        for name in ("fetched", "stored", "duplicates", "parsed", "quarantined", "fetch_failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes


class _Seen:
    """What the database already holds for one batch, loaded with two queries, then kept
    current as the batch adds rows (a message twice in one batch is still one message)."""

    def __init__(self, session: Session, batch: list[RawMail], keys: list[str]):
        self.session = session
        uids = [r.uid for r in batch if r.uid is not None]
        self.copies: set[tuple[str, int, int]] = set()
        if uids:
            first = batch[0]
            rows = session.exec(select(MessageCopy.uid).where(
                MessageCopy.mailbox == first.mailbox, MessageCopy.uidvalidity == first.uidvalidity,
                MessageCopy.uid.in_(uids))).all()
            self.copies = {(first.mailbox, first.uidvalidity, uid) for uid in rows}
        self.rows = {r.key: r for r in session.exec(select(InboundMessage).where(InboundMessage.key.in_(keys)))}

    def row(self, key: str) -> InboundMessage | None:
        if key not in self.rows:
            self.rows[key] = find_by_key(self.session, key)
        return self.rows[key]


def keep(session: Session, raws: RawStore, raw: RawMail, folder: str = "INBOX",
         seen: _Seen | None = None, ident: tuple | None = None) -> tuple[InboundMessage | None, str]:
    """Store one fetched message: raw file, then an inbound row (or a duplicate copy).

    Returns (row, outcome) with outcome 'stored', 'duplicate' or 'seen' (this exact UID
    was already recorded). The caller commits; nothing here talks to the server.
    """
    message_id, key, fingerprint, sha = ident or (*parser.read_key(raw.data), raw.sha256)
    seen = seen or _Seen(session, [raw], [key])
    if raw.uid is not None and (raw.mailbox, raw.uidvalidity, raw.uid) in seen.copies:
        return None, "seen"
    row = seen.row(key)
    if row is not None and message_id and row.fingerprint != fingerprint and row.sha256 != sha:
        # Same Message-ID, different message (a broken client, a template re-used): both are kept.
        key = f"{message_id}#{fingerprint[:16]}"
        log_event(session, "message-id-collision", f"{message_id} in {raw.mailbox} uid {raw.uid}",
                  mailbox=raw.mailbox, inbound_id=row.id)
        row = seen.row(key)
    outcome = "duplicate"
    if row is None:
        rel = raws.put(raw.data, sha)
        row = InboundMessage(key=key, message_id=message_id, sha256=sha, fingerprint=fingerprint,
                             size=len(raw.data), raw_path=rel, first_mailbox=raw.mailbox or "replay")
        session.add(row)
        session.flush()
        seen.rows[key] = row
        outcome = "stored"
    else:
        note = "same bytes" if row.sha256 == sha else "same Message-ID, different bytes"
        log_event(session, "duplicate", f"{note}; copy in {raw.mailbox} uid {raw.uid}",
                  mailbox=raw.mailbox, inbound_id=row.id)
    if raw.uid is not None:
        session.add(MessageCopy(inbound_id=row.id, mailbox=raw.mailbox, folder=folder,
                                uidvalidity=raw.uidvalidity, uid=raw.uid, sha256=sha,
                                duplicate=outcome == "duplicate"))
        seen.copies.add((raw.mailbox, raw.uidvalidity, raw.uid))
    return row, outcome


def keep_batch(engine, raws: RawStore, batch: list[RawMail], folder: str, state_update) -> Counts:
    """Store a fetched batch in one transaction together with the mailbox's progress.

    `state_update(session)` moves the mailbox's last UID in the same commit, so progress
    and stored rows never disagree. A unique-key race with another worker retries once.
    """
    idents = [(*parser.read_key(raw.data), raw.sha256) for raw in batch]
    for attempt in (1, 2):
        counts = Counts(fetched=len(batch))
        try:
            with Session(engine) as session:
                seen = _Seen(session, batch, [i[1] for i in idents])
                for raw, ident in zip(batch, idents):
                    _row, outcome = keep(session, raws, raw, folder, seen, ident)
                    if outcome == "stored":
                        counts.stored += 1
                    elif outcome == "duplicate":
                        counts.duplicates += 1
                state_update(session)
                RawStore.sync()
                session.commit()
            return counts
        except IntegrityError:
            if attempt == 2:
                raise
            log.info("batch raced with another worker; retrying once")
    return Counts()


def process_pending(engine, raws: RawStore, limit: int = 200, max_bytes: int = 64 << 20) -> Counts:
    """Parse every stored, unprocessed message; quarantine what cannot be handled.

    Messages are taken in batches (row locks skip what another worker holds) and their
    results committed together; if a batch cannot be committed, its messages are done one
    by one so that only the one at fault is quarantined.
    """
    counts = Counts()
    while True:
        with Session(engine) as session:
            rows = session.exec(select(InboundMessage).where(InboundMessage.status == "stored")
                                .order_by(InboundMessage.id).limit(limit)
                                .with_for_update(skip_locked=True)).all()
            if not rows:
                return counts
            done, size = Counts(), 0
            ids = [r.id for r in rows]
            for row in rows:
                _tally(done, _process_row(session, raws, row))
                size += row.size
                if size > max_bytes:
                    break  # commit now; the rest are picked up by the next round
            try:
                session.commit()
                counts.add(done)
                continue
            except SQLAlchemyError:
                session.rollback()
                log.exception("committing a processed batch failed; going one by one")
        for inbound_id in ids:
            _tally(counts, process_one(engine, raws, inbound_id))


def _tally(counts: Counts, outcome: str) -> None:
    if outcome == "parsed":
        counts.parsed += 1
    elif outcome == "quarantined":
        counts.quarantined += 1


def process_one(engine, raws: RawStore, inbound_id: int) -> str:
    """Parse one stored message and record the result; never raises for bad mail."""
    with Session(engine) as session:
        row = session.exec(select(InboundMessage).where(InboundMessage.id == inbound_id,
                                                        InboundMessage.status == "stored")
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return "skipped"  # another worker has it, or it is done
        outcome = _process_row(session, raws, row)
        try:
            session.commit()
            return outcome
        except SQLAlchemyError as exc:
            session.rollback()
            reason = f"处理结果无法保存到数据库（{type(exc).__name__}）"
    with Session(engine) as session:
        row = session.get(InboundMessage, inbound_id)
        _quarantine(session, row, reason)
        session.commit()
        return "quarantined"


def _process_row(session: Session, raws: RawStore, row: InboundMessage) -> str:
    """Parse one row's raw message and record the result in the session (no commit)."""
    row.attempts += 1
    try:
        data = raws.read(row.raw_path)
    except OSError as exc:
        return _quarantine(session, row, f"原始邮件文件无法读取（{exc.strerror or exc}）")
    try:
        mail = parser.parse(data, sha256=row.sha256)
    except parser.UnreadableMessage as exc:
        return _quarantine(session, row, f"无法解析：不是一封可读的邮件（{exc}）")
    except Exception as exc:  # a parser bug must not stop the loop: keep it, say why
        log.exception("parse failed for inbound %s", row.id)
        return _quarantine(session, row, f"解析时出错（{type(exc).__name__}: {str(exc)[:200]}）")
    _record_parsed(row, mail)
    row.status = "parsed"
    row.processed_at = utcnow()
    return "parsed"


def _record_parsed(row: InboundMessage, mail) -> None:
    row.subject = mail.subject[:2000]
    row.from_address = mail.from_.address[:320]
    row.from_name = mail.from_.name[:300]
    row.sent_at = mail.date
    row.auto_reply = mail.auto_reply
    row.bounce = mail.bounce
    row.attachment_count = len(mail.attachments)
    summary = mail.to_json()
    if len(summary["text"]) > 200_000:
        summary["text"] = summary["text"][:200_000]
    row.parsed_json = json.dumps(summary, ensure_ascii=False)


def _quarantine(session: Session, row: InboundMessage, reason: str) -> str:
    row.status = "quarantined"
    row.reason = reason
    row.processed_at = utcnow()
    log_event(session, "quarantined", reason, inbound_id=row.id)
    return "quarantined"


def replay(engine, raws: RawStore, data: bytes, mailbox: str) -> tuple[InboundMessage, str]:
    """Take one message from a file through the pipeline as if it arrived in `mailbox`.

    A message already stored is not stored again; a quarantined one is processed again
    (the way to retry after a fix). Returns the row and what happened.
    """
    with Session(engine) as session:
        row, outcome = keep(session, raws, RawMail(data=data, mailbox=mailbox))
        if outcome == "duplicate" and row.status == "quarantined":
            row.status = "stored"
            row.reason = None
            log_event(session, "replay", f"re-processing after quarantine, from {mailbox}", inbound_id=row.id)
            outcome = "retried"
        elif outcome == "stored":
            log_event(session, "replay", f"stored from a file as if received in {mailbox}", inbound_id=row.id)
        session.commit()
        inbound_id = row.id
    if outcome in ("stored", "retried"):
        result = process_one(engine, raws, inbound_id)
        outcome = f"{outcome}+{result}" if outcome == "retried" else result
    with Session(engine) as session:
        return session.get(InboundMessage, inbound_id), outcome
