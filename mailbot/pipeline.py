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

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from . import parse as parser
from .models import RawMail
from .store import InboundMessage, MessageCopy, RawStore, find_by_key, find_copy, log_event, utcnow

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


def keep(session: Session, raws: RawStore, raw: RawMail, folder: str = "INBOX") -> tuple[InboundMessage | None, str]:
    """Store one fetched message: raw file, then an inbound row (or a duplicate copy).

    Returns (row, outcome) with outcome 'stored', 'duplicate' or 'seen' (this exact UID
    was already recorded). The caller commits; nothing here talks to the server.
    """
    if raw.uid is not None and find_copy(session, raw.mailbox, raw.uidvalidity, raw.uid):
        return None, "seen"
    message_id, key, fingerprint = parser.read_key(raw.data)
    sha = raw.sha256
    row = find_by_key(session, key)
    if row is not None and message_id and row.fingerprint != fingerprint and row.sha256 != sha:
        # Same Message-ID, different message (a broken client, a template re-used): both are kept.
        key = f"{message_id}#{fingerprint[:16]}"
        log_event(session, "message-id-collision", f"{message_id} in {raw.mailbox} uid {raw.uid}",
                  mailbox=raw.mailbox, inbound_id=row.id)
        row = find_by_key(session, key)
    outcome = "duplicate"
    if row is None:
        rel = raws.put(raw.data, sha)
        row = InboundMessage(key=key, message_id=message_id, sha256=sha, fingerprint=fingerprint,
                             size=len(raw.data), raw_path=rel, first_mailbox=raw.mailbox or "replay")
        session.add(row)
        session.flush()
        outcome = "stored"
    else:
        note = "same bytes" if row.sha256 == sha else "same Message-ID, different bytes"
        log_event(session, "duplicate", f"{note}; copy in {raw.mailbox} uid {raw.uid}",
                  mailbox=raw.mailbox, inbound_id=row.id)
    if raw.uid is not None:
        session.add(MessageCopy(inbound_id=row.id, mailbox=raw.mailbox, folder=folder,
                                uidvalidity=raw.uidvalidity, uid=raw.uid, sha256=sha,
                                duplicate=outcome == "duplicate"))
    return row, outcome


def keep_batch(engine, raws: RawStore, batch: list[RawMail], folder: str, state_update) -> Counts:
    """Store a fetched batch in one transaction together with the mailbox's progress.

    `state_update(session)` moves the mailbox's last UID in the same commit, so progress
    and stored rows never disagree. A unique-key race with another worker retries once.
    """
    for attempt in (1, 2):
        counts = Counts(fetched=len(batch))
        try:
            with Session(engine) as session:
                for raw in batch:
                    _row, outcome = keep(session, raws, raw, folder)
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


def process_pending(engine, raws: RawStore, limit: int = 1000) -> Counts:
    """Parse every stored, unprocessed message; quarantine what cannot be handled."""
    counts = Counts()
    while True:
        with Session(engine) as session:
            ids = session.exec(select(InboundMessage.id).where(InboundMessage.status == "stored")
                               .order_by(InboundMessage.id).limit(limit)).all()
        if not ids:
            return counts
        for inbound_id in ids:
            outcome = process_one(engine, raws, inbound_id)
            if outcome == "parsed":
                counts.parsed += 1
            elif outcome == "quarantined":
                counts.quarantined += 1
        if len(ids) < limit:
            return counts


def process_one(engine, raws: RawStore, inbound_id: int) -> str:
    """Parse one stored message and record the result; never raises for bad mail."""
    with Session(engine) as session:
        row = session.exec(select(InboundMessage).where(InboundMessage.id == inbound_id,
                                                        InboundMessage.status == "stored")
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return "skipped"  # another worker has it, or it is done
        row.attempts += 1
        try:
            mail = parser.parse(raws.read(row.raw_path))
        except parser.UnreadableMessage as exc:
            return _quarantine(session, row, f"无法解析：不是一封可读的邮件（{exc}）")
        except Exception as exc:  # a parser bug must not stop the loop: keep it, say why
            log.exception("parse failed for inbound %s", inbound_id)
            return _quarantine(session, row, f"解析时出错（{type(exc).__name__}: {str(exc)[:200]}）")
        _record_parsed(row, mail)
        row.status = "parsed"
        row.processed_at = utcnow()
        log_event(session, "parsed", f"{len(mail.attachments)} attachment(s), {len(mail.defects)} defect(s)",
                  inbound_id=row.id)
        session.commit()
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
    session.commit()
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
