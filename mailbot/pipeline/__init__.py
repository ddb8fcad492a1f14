"""Use cases over stored mail: keep a raw message (deduplicated), process what is pending,
replay a file. Later issues hang routing, filing, review and forms off `record_results`.

Order is the whole point: raw bytes on disk and a row in the database first; parsing
and everything after it work from the stored copy, so a crash at any step loses nothing
and a re-run picks up exactly what is left.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailbot import alerts, clock, filing, outbox
from mailbot.models import Parsed, RawMail, mail_from_json
from mailbot.office import Office
from mailbot.pipeline import parseworker
from mailbot.read import parse as parser
from mailbot.store import (
    InboundMessage,
    MessageCopy,
    RawStore,
    log_event,
)

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


@dataclass
class _Known:
    id: int | None  # None until the batch's new rows are INSERTed (`_Seen.flush_inbound`)
    fingerprint: str  # "" until a Message-ID clash needs it (`content_fingerprint`)
    sha256: str
    status: str
    data: bytes | None = None  # a row new in this batch: its bytes (its file may not be written yet)

    def content_fingerprint(self, raws: RawStore) -> str | None:
        """The stored message's fingerprint, computed from its bytes when the row has none
        yet; None when its file cannot be read (then nothing is taken for a copy of it)."""
        if not self.fingerprint:
            try:
                data = self.data if self.data is not None else raws.path_for(self.sha256).read_bytes()
            except OSError:
                return None
            self.fingerprint = parser.fingerprint(data)
        return self.fingerprint


class _Seen:
    """What the database already holds for one batch, loaded with two queries, then kept
    current as the batch adds rows (a message twice in one batch is still one message).
    Copy rows wait here and are inserted together (`flush_copies`)."""

    def __init__(self, session: Session, batch: list[RawMail], keys: list[str]):
        self.session = session
        self.copies: set[tuple[str, int, int]] = set()
        self.new_copies: list[tuple[_Known, dict]] = []
        self.new_inbound: list[tuple[_Known, dict]] = []  # INSERTed together, ids back in order
        self.writing: set[str] = set()  # raw files the caller is writing (keep_batch)
        uids = [r.uid for r in batch if r.uid is not None]
        if uids:
            first = batch[0]
            rows = session.exec(select(MessageCopy.uid).where(
                MessageCopy.mailbox == first.mailbox, MessageCopy.uidvalidity == first.uidvalidity,
                MessageCopy.uid.in_(uids))).all()
            self.copies = {(first.mailbox, first.uidvalidity, uid) for uid in rows}
        self.rows: dict[str, _Known | None] = {}
        self._load(keys)
        for key in keys:  # not in the database: known to be new, no query per message later
            self.rows.setdefault(key, None)

    def _load(self, keys: list[str]) -> None:
        cols = (InboundMessage.key, InboundMessage.id, InboundMessage.fingerprint,
                InboundMessage.sha256, InboundMessage.status)
        for key, *rest in self.session.exec(select(*cols).where(InboundMessage.key.in_(keys))):
            self.rows[key] = _Known(*rest)

    def row(self, key: str) -> _Known | None:
        if key not in self.rows:
            self._load([key])
            self.rows.setdefault(key, None)
        return self.rows[key]

    def known_id(self, row: _Known) -> int:
        """The row's id, INSERTing the batch's new rows first if it is one of them."""
        if row.id is None:
            self.flush_inbound()
        return row.id

    def flush_inbound(self) -> None:
        """One multi-row INSERT … RETURNING for the batch's new inbound rows (was one per message)."""
        if not self.new_inbound:
            return
        rows, self.new_inbound = self.new_inbound, []
        ids = self.session.connection().execute(_INSERT_INBOUND, [values for _row, values in rows]).scalars().all()
        for (row, _values), new_id in zip(rows, ids, strict=True):
            row.id = new_id

    def flush_copies(self) -> None:
        self.flush_inbound()
        if self.new_copies:
            self.session.execute(insert(MessageCopy), [dict(values, inbound_id=row.id)
                                                       for row, values in self.new_copies])
            self.new_copies = []


# built once: a statement built per message cost more than its SQL (coercion, cache key);
# executed with a batch's rows it is one INSERT … VALUES (…), (…) RETURNING, ids in row order
_INSERT_INBOUND = insert(InboundMessage.__table__).returning(InboundMessage.__table__.c.id,
                                                            sort_by_parameter_order=True)


def keep(session: Session, raws: RawStore, raw: RawMail, folder: str = "INBOX",
         seen: _Seen | None = None, ident: tuple | None = None) -> tuple[_Known | None, str]:
    """Store one fetched message: raw file, then an inbound row (or a duplicate copy).

    Returns (row, outcome) with outcome 'stored', 'duplicate' or 'seen' (this exact UID
    was already recorded). The caller commits; nothing here talks to the server.
    """
    message_id, key, sha = ident or _ident(raw)
    fingerprint = ""  # computed only where it decides something: a Message-ID seen before, other bytes
    alone = seen is None
    seen = seen or _Seen(session, [raw], [key])
    if raw.uid is not None and (raw.mailbox, raw.uidvalidity, raw.uid) in seen.copies:
        return None, "seen"
    row = seen.row(key)
    if row is not None and message_id and row.sha256 != sha:  # the same message, delivered again?
        fingerprint = parser.fingerprint(raw.data)
        if row.content_fingerprint(raws) != fingerprint:
            # Same Message-ID, different message (a broken client, a template re-used): both are kept.
            key = f"{message_id}#{fingerprint[:16]}"
            log_event(session, "message-id-collision", f"{message_id} in {raw.mailbox} uid {raw.uid}",
                      mailbox=raw.mailbox, inbound_id=seen.known_id(row))
            row = seen.row(key)
    outcome = "duplicate"
    if row is None:
        rel = raws.relative(sha) if sha in seen.writing else raws.put(raw.data, sha)
        row = seen.rows[key] = _Known(None, fingerprint, sha, "stored", raw.data)
        seen.new_inbound.append((row, dict(
            key=key, message_id=message_id, sha256=sha, fingerprint=fingerprint, size=len(raw.data),
            raw_path=rel, first_mailbox=raw.mailbox or "replay", status="stored", received_at=clock.now(),
            auto_reply=False, bounce=False, attachment_count=0, attempts=0)))
        outcome = "stored"
    else:
        note = "same bytes" if row.sha256 == sha else "same Message-ID, different bytes"
        log_event(session, "duplicate", f"{note}; copy in {raw.mailbox} uid {raw.uid}",
                  mailbox=raw.mailbox, inbound_id=seen.known_id(row))
    if raw.uid is not None:
        seen.new_copies.append((row, dict(mailbox=raw.mailbox, folder=folder,
                                          uidvalidity=raw.uidvalidity, uid=raw.uid, sha256=sha,
                                          duplicate=outcome == "duplicate", server_action="pending",
                                          created_at=clock.now())))
        seen.copies.add((raw.mailbox, raw.uidvalidity, raw.uid))
    if alone:
        seen.flush_copies()
    return row, outcome


def _ident(raw: RawMail) -> tuple[str | None, str, str]:
    """(Message-ID, dedup key, sha256): the header block read and the bytes hashed once."""
    sha = raw.sha256
    return (*parser.read_id(raw.data, sha), sha)


_HASHERS: ThreadPoolExecutor | None = None


def _hashers() -> ThreadPoolExecutor:
    """Threads for a batch's sha256 and Message-IDs: hashlib lets go of the GIL on large
    buffers, so hashing runs on both cores while the parse worker and this thread work."""
    global _HASHERS
    if _HASHERS is None:
        _HASHERS = ThreadPoolExecutor(2, thread_name_prefix="hash")
    return _HASHERS


def identify(batch: list[RawMail]):
    """Start hashing a batch (sha256, Message-ID) in the hash threads; the
    result is handed to `keep_batch`, so the caller can record parse results meanwhile."""
    return [_hashers().submit(_ident, raw) for raw in batch] if len(batch) > 1 else [_Ready(_ident(raw)) for raw in batch]


def _write_all(raws: RawStore, items: list[tuple[bytes, str]]) -> None:
    """Write raw files (several threads when there are several) and flush them to disk."""
    if len(items) > 1:
        with ThreadPoolExecutor(2, thread_name_prefix="raw") as pool:
            list(pool.map(lambda item: raws.put(*item), items))
    else:
        for item in items:
            raws.put(*item)
    RawStore.sync()


def keep_batch(engine, raws: RawStore, batch: list[RawMail], folder: str, state_update, idents=None) -> Counts:
    """Store a fetched batch in one transaction together with the mailbox's progress.

    `state_update(session)` moves the mailbox's last UID in the same commit, so progress
    and stored rows never disagree. A unique-key race with another worker is retried.
    `idents` is what `identify(batch)` started (computed here when not given).
    """
    return start_keep(engine, raws, batch, folder, state_update, idents).finish()


def start_keep(engine, raws: RawStore, batch: list[RawMail], folder: str, state_update, idents=None) -> "Keeping":
    """`keep_batch` in two halves: this starts writing the batch's new raw files (a thread
    writes them and flushes them to disk) and prepares its rows; `finish()` waits for the
    files, then INSERTs and commits. The caller fetches the next batch in between, so the
    disk's work overlaps the network's."""
    return Keeping(engine, raws, batch, folder, state_update,
                   [f.result() for f in (identify(batch) if idents is None else idents)])


class Keeping:
    """A batch being stored (`start_keep`)."""

    def __init__(self, engine, raws: RawStore, batch: list[RawMail], folder: str, state_update, idents: list):
        self.engine, self.raws, self.batch, self.folder, self.state_update = engine, raws, batch, folder, state_update
        self.idents = idents
        self.session = Session(engine)
        try:
            self.counts, self.seen = self._prepare(self.session)
            # the new messages' raw files are written and flushed to disk in a thread (the
            # writes and the sync let go of the GIL) while the rows wait here
            fresh = {ident[2]: raw.data for raw, ident in zip(batch, idents) if ident[2] in self.seen.writing}
            self.written = _hashers().submit(_write_all, raws, [(data, sha) for sha, data in fresh.items()])
        except BaseException:
            self.session.close()
            raise

    def _prepare(self, session: Session) -> tuple[Counts, _Seen]:
        counts = Counts(fetched=len(self.batch))
        seen = _Seen(session, self.batch, [i[1] for i in self.idents])
        seen.writing = {ident[2] for ident in self.idents if seen.rows.get(ident[1]) is None}
        for raw, ident in zip(self.batch, self.idents):
            _row, outcome = keep(session, self.raws, raw, self.folder, seen, ident)
            if outcome == "stored":
                counts.stored += 1
            elif outcome == "duplicate":
                counts.duplicates += 1
        return counts, seen

    def finish(self) -> Counts:
        """The files on disk, then the rows and the mailbox's progress in one commit. The
        fetched bytes are let go of here (parsing reads the files: a 40 MB message is not
        held by the robot while its worker parses it)."""
        try:
            return self._finish()
        finally:
            self.batch = self.seen = self.written = None

    def _finish(self) -> Counts:
        try:
            self.written.result()  # the files are on disk before the rows that point at them
            try:
                self.seen.flush_copies()
                self.state_update(self.session)
                self.session.commit()
                return self.counts
            except IntegrityError:
                self.session.rollback()
        finally:
            self.session.close()
        for attempt in range(2, 6):  # another worker stored some of these meanwhile: again, as things are now
            log.info("batch raced with another worker; retrying (%d)", attempt)
            time.sleep(0.05 * attempt)
            try:
                with Session(self.engine) as session:
                    counts, seen = self._prepare(session)
                    missing = [(raw.data, ident[2]) for raw, ident in zip(self.batch, self.idents)
                               if ident[2] in seen.writing and not self.raws.path_for(ident[2]).exists()]
                    _write_all(self.raws, missing)
                    seen.flush_copies()
                    self.state_update(session)
                    session.commit()
                return counts
            except IntegrityError:
                if attempt == 5:
                    raise
        return Counts()


class _Ready:
    """A finished result with the Future interface, for in-process parsing."""

    def __init__(self, value):
        self.value = value

    def done(self) -> bool:
        return True

    def result(self, timeout=None):
        return self.value


class Processor:
    """Parses stored messages (in worker processes, or inline) and records the results.

    `submit()` hands every stored, not yet submitted message to the parser; `collect()`
    records what has finished; `drain()` waits for everything. Results are written only
    to rows still 'stored', so a message is recorded once even with several robots.
    A worker that crashes or exceeds `timeout` seconds on a message is replaced, and the
    message it was on is quarantined with the reason.
    """

    def __init__(self, engine, raws: RawStore, workers: int = 0, timeout: float = 300.0,
                 settings=None, on_outbox=None, office: Office | None = None):
        self.engine, self.raws, self.workers, self.timeout = engine, raws, workers, timeout
        self.on_outbox = on_outbox
        self.clock = clock.now  # what filing, review and forms take as "now" (tests move it)
        # without settings (tests of ingestion alone) messages are parsed, not classified
        self.office = office or (Office.load(settings) if settings is not None else None)
        self.settings = self.office.settings if self.office else None
        self.directory = self.office.directory if self.office else None
        self.pool = None
        self.inflight: dict[int, tuple[object, float, str, str]] = {}
        self.lock = threading.RLock()

    def _pool(self):
        if self.pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=parseworker.start,
                                            initargs=(os.getpid(),))
        return self.pool

    def warm(self) -> None:
        """Start the parse workers now (spawning one and importing the parser takes about a
        second), so they are ready when the first fetched batch is stored."""
        if self.workers:
            self._pool().submit(parseworker.warm)

    def submit(self, limit: int = 1000) -> int:
        with self.lock, Session(self.engine) as session:
            rows = session.exec(select(InboundMessage.id, InboundMessage.raw_path, InboundMessage.sha256,
                                       InboundMessage.first_mailbox)
                                .where(InboundMessage.status == "stored")
                                .order_by(InboundMessage.id).limit(limit)).all()
            fresh = [r for r in rows if r[0] not in self.inflight]
            for inbound_id, rel, sha, mailbox in fresh:
                path = str(self.raws.root / rel)
                job = self.job(inbound_id, mailbox)
                fut = (self._pool().submit(parseworker.parse_file, path, sha, job) if self.workers
                       else _Ready(parseworker.parse_file(path, sha, job)))
                self.inflight[inbound_id] = (fut, time.monotonic(), path, sha, job)
            return len(fresh)

    def job(self, inbound_id: int, mailbox: str) -> dict | None:
        if self.directory is None:
            return None
        return parseworker.make_job(self.settings, self.directory, self.office.templates, mailbox,
                                    self.clock().astimezone(self.settings.tz).date(),  # the year of 12月20日
                                    str(self.raws.root / "staging" / str(inbound_id)))

    def record(self, results: list[tuple[int, Parsed]]) -> list[str]:
        ctx = None
        if self.settings is not None:
            ctx = self.office.at(self.clock())
        outcomes, queued = record_results(self.engine, results, ctx)
        if queued and self.on_outbox is not None:
            self.on_outbox()
        return outcomes

    def collect(self, wait: bool = False) -> Counts:
        """Record finished results (all of them, waiting, when `wait`)."""
        counts = Counts()
        with self.lock:
            while self.inflight:
                results = self._finished()
                if results:
                    _tally_all(counts, self.record(results))
                if not wait or not self.inflight:
                    break
                time.sleep(0.01)
        return counts

    def drain(self) -> Counts:
        """Parse and record everything stored, including what arrives meanwhile from this process."""
        counts = Counts()
        while self.submit() or self.inflight:
            counts.add(self.collect(wait=True))
        return counts

    def _finished(self) -> list[tuple[int, Parsed]]:
        out = []
        for inbound_id, (fut, started, path, sha, job) in list(self.inflight.items()):
            if fut.done():
                try:
                    out.append((inbound_id, fut.result()))
                except BrokenProcessPool:
                    out += self._isolate(inbound_id, path, sha, job)
                del self.inflight[inbound_id]
            elif time.monotonic() - started > self.timeout:
                self._kill_pool()
                out.append((inbound_id, Parsed.quarantined(f"解析超过 {self.timeout:.0f} 秒仍未完成，已中止")))
                del self.inflight[inbound_id]
                self._resubmit()
        return out

    def _isolate(self, inbound_id: int, path: str, sha: str, job) -> list[tuple[int, Parsed]]:
        """The pool broke under some message: try this one alone in a fresh worker."""
        self._kill_pool()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=parseworker.start,
                                 initargs=(os.getpid(),)) as alone:
            try:
                return [(inbound_id, alone.submit(parseworker.parse_file, path, sha, job).result(self.timeout))]
            except Exception as exc:  # the worker died on this very message
                log.error("parse worker died on inbound %s (%s)", inbound_id, type(exc).__name__)
                return [(inbound_id, Parsed.quarantined(f"解析进程在处理这封邮件时崩溃（{type(exc).__name__}）"))]

    def _kill_pool(self) -> None:
        if self.pool is not None:
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.kill()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def _resubmit(self) -> None:
        for inbound_id, (_fut, _t, path, sha, job) in list(self.inflight.items()):
            self.inflight[inbound_id] = (self._pool().submit(parseworker.parse_file, path, sha, job),
                                         time.monotonic(), path, sha, job)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def record_results(engine, results: list[tuple[int, Parsed]], ctx=None) -> tuple[list[str], int]:
    """Write parse results to rows that are still 'stored', and act on them (filing);
    return the outcomes recorded and how many outbox rows were queued.

    One transaction for the lot; if it cannot be committed, row by row, so that only the
    row at fault is quarantined (with the reason).
    """
    try:
        with Session(engine) as session:
            outcomes, queued = _apply(session, results, ctx)
            session.commit()
            return outcomes, queued
    except Exception:  # a database error, or a filing error (disk): isolate the culprit
        log.exception("recording a batch of results failed; going one by one")
    outcomes, queued = [], 0
    for item in results:
        try:
            with Session(engine) as session:
                done, n = _apply(session, [item], ctx)
                session.commit()
        except Exception as exc:
            log.exception("recording inbound %s failed", item[0])
            with Session(engine) as session:
                done, n = _apply(session, [(item[0], Parsed.quarantined(
                    f"处理结果无法保存（{type(exc).__name__}: {str(exc)[:200]}）"))], ctx)
                session.commit()
        outcomes += done
        queued += n
    return outcomes, queued


_PARSED = (update(InboundMessage.__table__)
           .where(InboundMessage.__table__.c.id == bindparam("_id"))
           .values(attempts=InboundMessage.__table__.c.attempts + 1))


def _apply(session: Session, results: list[tuple[int, Parsed]], ctx=None) -> tuple[list[str], int]:
    """Record results on rows still 'stored' (locked; rows another worker holds are skipped)."""
    by_id = dict(results)
    live = session.exec(select(InboundMessage.id).where(InboundMessage.id.in_(list(by_id)),
                                                        InboundMessage.status == "stored")
                        .with_for_update(skip_locked=True)).all()
    outcomes, parsed, routed = [], [], []
    now = clock.now()
    for inbound_id in live:
        result = by_id[inbound_id]
        if result.status == "parsed":
            sent, route = result.columns["sent_at"], result.route
            parsed.append({**result.columns, "sent_at": datetime.fromisoformat(sent) if sent else None,
                           "route_json": json.dumps(route.to_json(), ensure_ascii=False) if route else None,
                           "_id": inbound_id, "parsed_json": result.summary, "status": "parsed", "processed_at": now})
            if route is not None and ctx is not None:
                routed.append((inbound_id, result))
        else:
            row = session.get(InboundMessage, inbound_id)
            row.attempts += 1
            _quarantine(session, row, result.reason)
            if ctx is not None:
                alerts.about_message(session, ctx, row, "quarantined", result.reason)
        outcomes.append(result.status)
    if parsed:
        session.execute(_PARSED, parsed)
    queued = 0
    if not routed:
        return outcomes, queued
    ids = [inbound_id for inbound_id, _result in routed]
    rows = {r.id: r for r in session.exec(select(InboundMessage).where(InboundMessage.id.in_(ids))).all()}
    items = [(rows[inbound_id], mail_from_json(json.loads(result.summary)), result) for inbound_id, result in routed]
    filing.prepare_batch(session, ctx, [(row, mail, result.route) for row, mail, result in items])
    before = session.info.get(outbox.QUEUED, 0)
    for row, mail, result in items:
        filing.handle(session, ctx, row, mail, result.route, result.staged)
    queued = session.info.get(outbox.QUEUED, 0) - before
    filing.finish_batch(session)
    return outcomes, queued


def _tally_all(counts: Counts, outcomes: list[str]) -> None:
    for outcome in outcomes:
        _tally(counts, outcome)


def _tally(counts: Counts, outcome: str) -> None:
    if outcome == "parsed":
        counts.parsed += 1
    elif outcome == "quarantined":
        counts.quarantined += 1


def _quarantine(session: Session, row: InboundMessage, reason: str) -> str:
    row.status = "quarantined"
    row.reason = reason
    row.outcome, row.outcome_reason = "needs-person", f"已隔离：{reason}"
    row.processed_at = clock.now()
    log_event(session, "quarantined", reason, inbound_id=row.id)
    return "quarantined"


def replay(engine, raws: RawStore, data: bytes, mailbox: str, processor: "Processor | None" = None
           ) -> tuple[InboundMessage, str]:
    """Take one message from a file through the pipeline as if it arrived in `mailbox`.

    A message already stored is not stored again; a quarantined one is processed again
    (the way to retry after a fix). Returns the row and what happened.
    """
    with Session(engine) as session:
        known, outcome = keep(session, raws, RawMail(data=data, mailbox=mailbox))
        row = session.get(InboundMessage, known.id)
        if outcome == "duplicate" and row.status == "quarantined":
            row.status = "stored"
            row.reason = None
            row.outcome = row.outcome_reason = None
            log_event(session, "replay", f"re-processing after quarantine, from {mailbox}", inbound_id=row.id)
            outcome = "retried"
        elif outcome == "stored":
            log_event(session, "replay", f"stored from a file as if received in {mailbox}", inbound_id=row.id)
        session.commit()
        inbound_id, row_path, sha = row.id, raws.root / row.raw_path, row.sha256
    if outcome in ("stored", "retried"):
        processor = processor or Processor(engine, raws)
        job = processor.job(inbound_id, mailbox)
        result = processor.record([(inbound_id, parseworker.parse_file(str(row_path), sha, job))])
        result = result[0] if result else "skipped"
        outcome = f"{outcome}+{result}" if outcome == "retried" else result
    with Session(engine) as session:
        return session.get(InboundMessage, inbound_id), outcome
