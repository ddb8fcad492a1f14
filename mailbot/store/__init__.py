"""The only SQL and the only disk writes: tables, engine, raw-mail files, schema checks.

SQLModel tables run unchanged on SQLite (the embedded default) and PostgreSQL; the
schema is owned by Alembic migrations in mailbot/migrations. Raw messages are stored
content-addressed by SHA-256 under <storage>/raw/, written before any row points at them.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from mailbot import clock
from mailbot.models import Staged
from mailbot.read.usable import check_attachment, display_name


class MailboxState(SQLModel, table=True):
    """Where ingestion stands in one mailbox folder: UIDVALIDITY and the last UID stored."""

    __tablename__ = "mailbox_state"
    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=100, unique=True)
    folder: str = Field(default="INBOX", max_length=200)
    uidvalidity: int | None = Field(default=None, sa_type=BigInteger)  # 32-bit unsigned
    last_uid: int = Field(default=0, sa_type=BigInteger)
    last_contact_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: datetime = Field(default_factory=clock.now)


class InboundMessage(SQLModel, table=True):
    """One distinct received message (deduplicated by `key`), with its processing state."""

    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_message_status", "status"),
                      Index("ix_inbound_message_kind_status", "kind", "status"))  # the console's needs-a-person list
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=1000, unique=True)
    message_id: str | None = Field(default=None, max_length=1000)
    sha256: str = Field(max_length=64, index=True)
    fingerprint: str = Field(max_length=64)  # parse.fingerprint, or "" until a Message-ID clash needs it
    size: int = Field(sa_type=BigInteger)
    raw_path: str = Field(max_length=300)
    first_mailbox: str = Field(max_length=100)
    status: str = Field(default="stored", max_length=20)  # stored | parsed | quarantined
    reason: str | None = Field(default=None, sa_column=Column(Text))
    subject: str | None = Field(default=None, sa_column=Column(Text))
    from_address: str | None = Field(default=None, max_length=320)
    from_name: str | None = Field(default=None, max_length=300)
    sent_at: datetime | None = Field(default=None)
    auto_reply: bool = Field(default=False)
    bounce: bool = Field(default=False)
    attachment_count: int = Field(default=0)
    parsed_json: str | None = Field(default=None, sa_column=Column(Text))
    kind: str | None = Field(default=None, max_length=20)  # routing.KINDS
    route_json: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = Field(default=0)
    received_at: datetime = Field(default_factory=clock.now)
    processed_at: datetime | None = Field(default=None)
    # what became of it, in words a person reads (models.OUTCOMES): filed | answered | applied |
    # ignored | needs-person; quarantined rows say needs-person too
    outcome: str | None = Field(default=None, max_length=20, index=True)
    outcome_reason: str | None = Field(default=None, sa_column=Column(Text))


class MessageCopy(SQLModel, table=True):
    """One copy of a message on a server (mailbox, UIDVALIDITY, UID): every UID the
    robot has fetched is accounted for here, duplicates included."""

    __tablename__ = "message_copy"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_message_copy_uid"),
                      Index("ix_message_copy_action", "mailbox", "server_action"))
    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", index=True)
    mailbox: str = Field(max_length=100)
    folder: str = Field(default="INBOX", max_length=200)
    uidvalidity: int = Field(sa_type=BigInteger)
    uid: int = Field(sa_type=BigInteger)
    sha256: str | None = Field(default=None, max_length=64)
    duplicate: bool = Field(default=False)
    server_action: str = Field(default="pending", max_length=20)  # pending | claimed | done | failed | none
    claimed_at: datetime | None = Field(default=None)  # a worker took the server action (one worker per copy)
    server_note: str | None = Field(default=None, sa_column=Column(Text))
    target_folder: str | None = Field(default=None, max_length=300)  # filing: move here after commit
    created_at: datetime = Field(default_factory=clock.now)


class TrackingCounter(SQLModel, table=True):
    """The last tracking sequence number per department prefix and year."""

    __tablename__ = "tracking_counter"
    __table_args__ = (UniqueConstraint("prefix", "year", name="uq_tracking_counter"),)
    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=10)
    year: int
    value: int = Field(default=0)


class Submission(SQLModel, table=True):
    """A 稿件: its tracking number stays the same through 转, 退回 and every revision."""

    __tablename__ = "submission"
    __table_args__ = (Index("ix_submission_department_created", "department", "created_at", "id"),  # the console's list
                      Index("ix_submission_status_created", "status", "created_at", "id"))
    id: int | None = Field(default=None, primary_key=True)
    tracking: str = Field(max_length=30, unique=True)
    department: str = Field(max_length=50, index=True)  # department key
    unit: str | None = Field(default=None, max_length=200, index=True)
    unit_known: bool = Field(default=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    revision: int = Field(default=1)
    status: str = Field(default="received", max_length=20, index=True)
    sender: str = Field(max_length=320)
    sender_name: str | None = Field(default=None, max_length=300)
    mailbox: str = Field(max_length=100)
    route_reason: str = Field(sa_column=Column(Text, nullable=False))
    inbound_id: int = Field(foreign_key="inbound_message.id", index=True)
    folder: str = Field(max_length=500)  # attachments on disk, relative to storage
    oversized: bool = Field(default=False)
    stage: int = Field(default=0)  # index of the review stage it is in
    published_at: datetime | None = Field(default=None)  # the publisher answered 已发布
    created_at: datetime = Field(default_factory=clock.now, index=True)
    updated_at: datetime = Field(default_factory=clock.now)


class SubmissionFile(SQLModel, table=True):
    """One attachment of one revision of a 稿件, as written to disk."""

    __tablename__ = "submission_file"
    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    revision: int = Field(default=1)
    filename: str = Field(sa_column=Column(Text, nullable=False))  # as the sender named it
    path: str = Field(max_length=700)  # relative to storage
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    content_type: str = Field(max_length=200)
    source: str = Field(default="unit", max_length=20)  # unit (the 稿件 itself) | reviewer (with a decision)
    problem: str | None = Field(default=None, sa_column=Column(Text))  # why it cannot be opened, if so


class ReviewTask(SQLModel, table=True):
    """One reviewer's part in one stage of one revision of a 稿件, with its token."""

    __tablename__ = "review_task"
    __table_args__ = (Index("ix_review_task_status_created", "status", "created_at"),)  # waiting reviews, oldest first
    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    revision: int
    department: str = Field(max_length=50)
    stage: int
    stage_name: str = Field(max_length=50)
    reviewer: str = Field(max_length=50)
    token: str = Field(max_length=64, unique=True)
    status: str = Field(default="open", max_length=20)  # open | decided | closed | expired
    decision: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    decided_by: str | None = Field(default=None, max_length=320)
    decided_at: datetime | None = Field(default=None, index=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    message_id: str | None = Field(default=None, max_length=300)  # our forward
    chased_at: datetime | None = Field(default=None)
    escalated_at: datetime | None = Field(default=None)
    reason_asked_at: datetime | None = Field(default=None)  # 退回 without a reason: asked once
    unit_told_at: datetime | None = Field(default=None)  # …and the unit told (with it, or without after a wait)
    expires_at: datetime
    created_at: datetime = Field(default_factory=clock.now)


class OutboxMessage(SQLModel, table=True):
    """One e-mail the robot owes someone, written in the transaction that caused it and
    sent by the outbox drainer: pending -> sending -> sent | failed | uncertain."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),
                      Index("ix_outbox_to_created", "to_address", "created_at"))
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)  # receipt, ...
    mailbox: str = Field(max_length=100)  # whose SMTP account sends it
    to_address: str = Field(max_length=320)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    message_id: str = Field(max_length=300, unique=True)
    raw: bytes = Field(sa_type=LargeBinary)
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=clock.now)
    give_up_at: datetime
    sending_at: datetime | None = Field(default=None)
    sent_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    submission_id: int | None = Field(default=None, foreign_key="submission.id", index=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    created_at: datetime = Field(default_factory=clock.now)


class FormReturn(SQLModel, table=True):
    """One form a unit sent for a campaign (a version: the latest valid one counts)."""

    __tablename__ = "form_return"
    __table_args__ = (Index("ix_form_return_campaign_unit", "campaign", "unit"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=50)
    unit: str | None = Field(default=None, max_length=200)
    sender: str = Field(max_length=320)
    version: int = Field(default=1)
    inbound_id: int = Field(foreign_key="inbound_message.id", index=True)
    filename: str = Field(sa_column=Column(Text, nullable=False))
    path: str | None = Field(default=None, max_length=700)
    format: str = Field(max_length=20)
    valid: bool = Field(default=False)
    stamped: bool = Field(default=False)  # a scan/photo of the stamped form came with it
    on_time: bool = Field(default=True)
    result_json: str = Field(sa_column=Column(Text, nullable=False))  # the forms check JSON
    received_at: datetime = Field(default_factory=clock.now)


class FormRow(SQLModel, table=True):
    """One data row of a form, with where it came from."""

    __tablename__ = "form_row"
    id: int | None = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="form_return.id", index=True)
    row_index: int
    source: str = Field(max_length=200)
    row_unit: str | None = Field(default=None, max_length=200)  # the unit named in the row, matched to the roster
    parent: str | None = Field(default=None, max_length=200)
    data_json: str = Field(sa_column=Column(Text, nullable=False))


class CampaignReminder(SQLModel, table=True):
    """A reminder sent (or the operator's missing list): at most once per unit and offset."""

    __tablename__ = "campaign_reminder"
    __table_args__ = (UniqueConstraint("campaign", "unit", "offset", name="uq_campaign_reminder"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=50)
    unit: str = Field(max_length=200)
    offset: int
    sent_at: datetime = Field(default_factory=clock.now)


class DigestRun(SQLModel, table=True):
    """One weekly digest period, claimed once (unique) by whichever worker sends it."""

    __tablename__ = "digest_run"
    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=20, unique=True)  # ISO week of the period, e.g. 2026-W47
    starts_at: datetime
    ends_at: datetime
    scheduled_at: datetime
    late: bool = Field(default=False)
    recipients: int = Field(default=0)
    trigger: str = Field(default="schedule", max_length=20)  # schedule | catch-up | operator
    created_at: datetime = Field(default_factory=clock.now)


class SchedulerJob(SQLModel, table=True):
    """The daemon's periodic jobs as last seen running: the heartbeat `status` and health read."""

    __tablename__ = "scheduler_job"
    id: str = Field(primary_key=True, max_length=50)  # kebab-case job name: weekly-digest
    last_run_at: datetime | None = Field(default=None)
    next_run_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: datetime = Field(default_factory=clock.now)


class OperatorAlert(SQLModel, table=True):
    """One condition the operators were (or are to be) told about, by key: deduplicated
    (one row per key) and rate-limited (`sent_at`: when the last mail about it went)."""

    __tablename__ = "operator_alert"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True)  # e.g. mailbox-down:skxkpb, quarantined:42
    kind: str = Field(max_length=50, index=True)
    detail: str | None = Field(default=None, sa_column=Column(Text))
    first_at: datetime = Field(default_factory=clock.now)
    last_at: datetime = Field(default_factory=clock.now)
    sent_at: datetime | None = Field(default=None)
    count: int = Field(default=1)
    resolved_at: datetime | None = Field(default=None)


class Event(SQLModel, table=True):
    """Audit trail: what happened, when, to which message or mailbox."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=clock.now, index=True)
    kind: str = Field(max_length=50, index=True)
    mailbox: str | None = Field(default=None, max_length=100)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", index=True)
    submission_id: int | None = Field(default=None, foreign_key="submission.id", index=True)
    actor: str | None = Field(default=None, max_length=320)
    detail: str | None = Field(default=None, sa_column=Column(Text))


class WebUser(SQLModel, table=True):
    """One person who may sign in to the staff console (mailbot.web.users hashes the password)."""

    __tablename__ = "web_user"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    role: str = Field(max_length=20)  # operator | clerk | leader
    department: str | None = Field(default=None, max_length=50)  # a clerk's department key
    password_hash: str = Field(max_length=300)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=clock.now)
    last_sign_in_at: datetime | None = Field(default=None)


# --- engine ---------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs for several threads and workers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True)


def log_event(session: Session, kind: str, detail: str = "", mailbox: str | None = None,
              inbound_id: int | None = None, submission_id: int | None = None, actor: str | None = None) -> None:
    add_row(session, Event.__table__, dict(at=clock.now(), kind=kind, detail=detail, mailbox=mailbox,
                                           inbound_id=inbound_id, submission_id=submission_id, actor=actor))


# --- rows written without ORM objects ---------------------------------------------

_ROWS = "mailbot.rows"  # session.info key: [(table, values)] not yet INSERTed, in the order added


def add_row(session: Session, table, values: dict) -> None:
    """Add a row that nothing reads back as an object (an event, an outbox letter): kept as
    plain values and INSERTed with the rows added after it, one executemany per table, before
    the session's next ORM statement, flush or commit. Building ORM objects for thousands of
    these per batch cost more than the SQL. Every row of one table must give the same keys.
    Rows referring to other rows only name rows that are already INSERTed."""
    rows = session.info.get(_ROWS)
    if rows is None:
        session.connection()  # in a transaction now: its end (commit, rollback, close) ends the list too
        rows = session.info[_ROWS] = []
    rows.append((table, values))


def write_rows(session: Session) -> None:
    """INSERT the rows `add_row` holds: one executemany per table, each table's rows in the
    order they were added (so are their ids; the rows held never refer to each other)."""
    rows = session.info.pop(_ROWS, None)
    if not rows:
        return
    by_table: dict = {}
    for table, values in rows:
        by_table.setdefault(table, []).append(values)
    conn = session.connection()
    for table, values in by_table.items():
        conn.execute(table.insert(), values)


@event.listens_for(Session, "do_orm_execute")
def _rows_before_statement(state) -> None:
    write_rows(state.session)  # a query sees every row added before it


@event.listens_for(Session, "before_flush")
def _rows_before_flush(session, _context, _instances) -> None:
    write_rows(session)


@event.listens_for(Session, "before_commit")
def _rows_before_commit(session) -> None:
    write_rows(session)


@event.listens_for(Session, "after_transaction_end")
def _rows_dropped(session, transaction) -> None:
    if transaction.parent is None:  # the transaction is over: rows not written were rolled back
        session.info.pop(_ROWS, None)


def mailbox_state(session: Session, mailbox: str, folder: str = "INBOX") -> MailboxState:
    """The state row of a mailbox, created on first use."""
    query = select(MailboxState).where(MailboxState.mailbox == mailbox)
    row = session.exec(query).first()
    if row is None:
        try:  # another robot may create it at the same moment: the savepoint keeps ours usable
            with session.begin_nested():
                row = MailboxState(mailbox=mailbox, folder=folder)
                session.add(row)
        except IntegrityError:
            row = session.exec(query).one()
    return row


# --- raw files ------------------------------------------------------------------


def place_files(session: Session, storage: Path, submission_id: int, staged, folder: str, revision: int,
                source: str = "unit") -> list[dict]:
    """Move staged attachments into a 稿件's folder: safe names, nothing overwritten (a
    same-named different file gets ' (2)'), the sender's name kept in the database."""
    from mailbot.read.parse import unique_name

    if not staged:  # a 稿件 written in the body alone: no folder until it has a file
        return []
    target = storage / folder
    target.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in target.iterdir()}
    placed = []
    for item in staged:
        name = item.safe_name
        dest = target / name
        if name in taken and not _same_file(dest, item.size, item.sha256):
            name = unique_name(name, taken)
            dest = target / name
        os.replace(item.path, dest)
        taken.add(name)
        session.add(SubmissionFile(submission_id=submission_id, revision=revision, filename=item.filename or name,
                                   path=f"{folder}/{name}", size=item.size, sha256=item.sha256,
                                   content_type=item.content_type, source=source, problem=item.problem))
        placed.append({"name": display_name(item.filename or name, len(placed) + 1), "size": item.size, "path": dest,
                       "content_type": item.content_type, "problem": item.problem})
    return placed


def _same_file(path: Path, size: int, sha256: str) -> bool:
    import hashlib

    return path.stat().st_size == size and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def stage_attachments(mail, folder: Path) -> tuple[Staged, ...]:
    """Write a message's attachments to a staging folder (001, 002 …); filing moves them into place."""
    if not mail.attachments:
        return ()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, att in enumerate(mail.attachments, 1):
        path = folder / f"{i:03d}"
        path.write_bytes(att.data)
        found = check_attachment(att.filename, att.content_type, att.data)
        out.append(Staged(str(path), att.filename, att.safe_name, att.size, att.sha256, att.content_type,
                          att.in_forwarded_message, found.message if found else None))
    return tuple(out)


class RawStore:
    """Content-addressed raw messages: <root>/raw/ab/cd/<sha256>.eml, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        return self.root / "raw" / sha256[:2] / sha256[2:4] / f"{sha256}.eml"

    def relative(self, sha256: str) -> str:
        """Where `put` writes these bytes, relative to root."""
        return str(self.path_for(sha256).relative_to(self.root))

    def put(self, data: bytes, sha256: str, durable: bool = False) -> str:
        """Write the bytes once (same hash, same file); return the path relative to root."""
        path = self.path_for(sha256)
        rel = str(path.relative_to(self.root))
        if path.exists() and path.stat().st_size == len(data):
            return rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return rel

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    @staticmethod
    def sync() -> None:
        """Flush written files to disk before the rows that point at them are committed."""
        os.sync()
