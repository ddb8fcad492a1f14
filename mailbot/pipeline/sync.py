"""Syncing one mailbox folder: the use case that drives the IMAP adapter (mailbot.ingest).

Progress is UIDVALIDITY + the highest UID stored, kept in the database and moved in the
same commit as the stored rows. Only after that commit is a message flagged or moved
(to its unit's folder, or the quarantine); nothing is ever deleted.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta

from imapclient import IMAPClient
from sqlalchemy import and_, or_, update
from sqlmodel import Session, select

from mailbot import clock, ingest
from mailbot.config import Mailbox, Settings
from mailbot.ingest import Folder, MailboxError
from mailbot.pipeline import Counts, Keeping, Processor, identify, start_keep
from mailbot.store import (
    InboundMessage,
    MessageCopy,
    RawStore,
    log_event,
    mailbox_state,
)

log = logging.getLogger("mailbot.sync")


def sync(client: IMAPClient, box: Mailbox, settings: Settings, engine, raws: RawStore,
         processor: Processor) -> Counts:
    """Fetch and store every new message, process it, then flag or quarantine it on the server.

    Parsing runs in the processor's worker while the next batch is fetched and stored.
    """
    folder = ingest.open_folder(client, box)
    last_uid = _progress(engine, box, folder.uidvalidity)
    uids = ingest.new_uids(client, last_uid)
    if uids:
        processor.warm()  # the parse worker starts (imports) while the first batch is fetched
    counts = Counts()
    pending = _Pending(box, raws, processor, counts)
    fetching = _Prefetch(client, box, folder.uidvalidity, uids, settings, before_large=pending.store)
    try:
        for batch, got, failed in fetching:
            for uid, why in failed:
                _fetch_failed(engine, box, folder.uidvalidity, uid, why)
            counts.fetch_failed += len(batch) - len(got)
            idents = identify(got)  # hashed in threads while the last batch's results are recorded
            counts.add(processor.collect())
            pending.store()
            pending.start(engine, got, box.folder, _advance(box, folder.uidvalidity, max(batch)), idents)
            del got  # the writer holds the batch until its files are on disk: parsing reads them back
        pending.store()
    finally:
        fetching.close()
        pending.abandon()
    counts.add(processor.drain())
    apply_server_actions(client, box, folder, engine, settings.mark_processed)
    _touch(engine, box)
    return counts


class _Prefetch:
    """The mailbox's batches, fetched by a thread one batch ahead of the caller: the server
    sends the next batch while this one is stored and the last results are recorded (the
    socket and the database let go of the GIL). The client is the thread's until `close()`.

    A batch larger than `batch_bytes` (one huge message) is fetched only after the caller
    has stored what it holds (`before_large`, called from the caller's thread), so it is never
    in memory beside other batches."""

    _END = object()

    def __init__(self, client: IMAPClient, box: Mailbox, uidvalidity: int, uids: list[int], settings: Settings,
                 before_large):
        self.before_large = before_large
        self.items: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.go_on = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(client, box, uidvalidity, uids, settings),
                                       name=f"fetch-{box.name}", daemon=True)
        self.thread.start()

    def _run(self, client, box, uidvalidity, uids, settings) -> None:
        try:
            for batch in ingest.batches(client, uids, settings.batch_size, settings.batch_bytes):
                if batch.size > settings.batch_bytes:
                    if not self._put(_LARGE):
                        return
                    while not self.go_on.wait(0.2):
                        if self.stop.is_set():
                            return
                    self.go_on.clear()
                failed: list[tuple[int, str]] = []
                got = ingest.fetch(client, box, uidvalidity, batch, failed)
                if not self._put((batch, got, failed)):
                    return
            self._put(self._END)
        except BaseException as exc:  # the caller raises it (network, server, MailboxError)
            self._put(exc)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            item = self.items.get()
            if item is self._END:
                return
            if item is _LARGE:
                self.before_large()
                self.go_on.set()
                continue
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop fetching and wait for the thread (the client is free again)."""
        self.stop.set()
        self.thread.join()


_LARGE = object()  # the next batch is one message larger than a batch: store what you hold first


class _Pending:
    """The last fetched batch, its files being written while the next batch is fetched;
    `store()` commits it and hands it to the parser."""

    def __init__(self, box: Mailbox, raws: RawStore, processor: Processor, counts: Counts):
        self.box, self.raws, self.processor, self.counts = box, raws, processor, counts
        self.keeping: Keeping | None = None

    def start(self, engine, got, folder: str, state_update, idents) -> None:
        try:
            self.keeping = start_keep(engine, self.raws, got, folder, state_update, idents)
        except OSError as exc:
            raise self._storage_error(exc) from None

    def store(self) -> None:
        if self.keeping is None:
            return
        keeping, self.keeping = self.keeping, None
        try:
            self.counts.add(keeping.finish())
        except OSError as exc:
            raise self._storage_error(exc) from None
        self.processor.submit()

    def abandon(self) -> None:
        """On the way out after an error: what was fetched before it is still stored."""
        if self.keeping is None:
            return
        keeping, self.keeping = self.keeping, None
        try:
            keeping.finish()
        except Exception:  # the error on its way out says what went wrong; this is logged
            log.exception("%s: storing the last fetched batch failed", self.box.name)

    def _storage_error(self, exc: OSError) -> MailboxError:
        # disk full, permissions: nothing was committed, nothing is lost
        return MailboxError("storage", f"邮箱 {self.box.name}：无法把邮件写入存储目录 {self.raws.root}"
                                       f"（{exc.strerror or exc}），请检查磁盘空间和权限；"
                                       "邮件仍在服务器上，恢复后会继续")


def _progress(engine, box: Mailbox, uidvalidity: int) -> int:
    with Session(engine) as session:
        state = mailbox_state(session, box.name, box.folder)
        if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed %s -> %s; rescanning (dedup keeps it exact)",
                        box.name, state.uidvalidity, uidvalidity)
            log_event(session, "uidvalidity-changed", f"{state.uidvalidity} -> {uidvalidity}", mailbox=box.name)
            state.last_uid = 0
        if state.uidvalidity != uidvalidity:
            state.uidvalidity = uidvalidity
        state.last_contact_at = clock.now()
        last = state.last_uid
        session.commit()
        return last


def _advance(box: Mailbox, uidvalidity: int, uid: int):
    def update(session: Session) -> None:
        state = mailbox_state(session, box.name, box.folder)
        if state.uidvalidity == uidvalidity and uid > state.last_uid:
            state.last_uid = uid
        state.last_contact_at = state.updated_at = clock.now()
        state.last_error = None
    return update


def _touch(engine, box: Mailbox, error: str | None = None) -> None:
    with Session(engine) as session:
        state = mailbox_state(session, box.name, box.folder)
        state.last_contact_at = clock.now() if error is None else state.last_contact_at
        state.last_error = error
        session.commit()


def record_error(engine, box: Mailbox, error: str) -> None:
    try:
        _touch(engine, box, error)
    except Exception:  # the database may be the thing that is down
        log.exception("could not record the error of %s", box.name)


def _fetch_failed(engine, box: Mailbox, uidvalidity: int, uid: int, why: str) -> None:
    with Session(engine) as session:
        session.add(MessageCopy(mailbox=box.name, folder=box.folder, uidvalidity=uidvalidity, uid=uid,
                                server_action="none", server_note=f"fetch failed: {why}"))
        log_event(session, "fetch-failed", f"uid {uid}: {why}", mailbox=box.name)
        session.commit()


def apply_server_actions(client: IMAPClient, box: Mailbox, folder: Folder, engine, mark: bool = True) -> None:
    """After the commit: flag processed copies, move filed ones to their unit's folder and
    quarantined ones to the quarantine folder. Nothing is deleted without a copy elsewhere.

    Each copy is first claimed (one committed UPDATE … WHERE still pending), so of several
    workers on one database exactly one moves it: two concurrent MOVEs of one UID would
    leave two copies in the target folder. A claim left by a worker that died is taken over
    after CLAIM_LEASE."""
    ids = _claim_copies(engine, box, folder)
    if not ids:
        return
    with Session(engine) as session:
        rows = session.exec(
            select(MessageCopy, InboundMessage.status)
            .join(InboundMessage, MessageCopy.inbound_id == InboundMessage.id)
            .where(MessageCopy.id.in_(ids))).all()
        moves: dict[str, list[int]] = {}
        stay = []
        for copy, status in rows:
            target = box.quarantine_folder if status == "quarantined" else copy.target_folder
            if target:
                moves.setdefault(target, []).append(copy.uid)
            else:
                stay.append(copy.uid)
        if mark and folder.can_flag:
            ingest.flag(client, stay + [u for uids in moves.values() for u in uids])
        notes: dict[int, str] = {}
        for target, uids in moves.items():
            notes.update(ingest.move(client, box, folder, uids, target))
        for copy, _status in rows:
            copy.server_action = "done"
            copy.server_note = notes.get(copy.uid, copy.server_note)
        session.commit()




CLAIM_LEASE = timedelta(minutes=10)


def _claim_copies(engine, box: Mailbox, folder: Folder) -> list[int]:
    """Claim this folder's processed copies still waiting for their server action; return
    the ids this worker now owns (none another worker holds)."""
    now = clock.now()
    waiting = or_(MessageCopy.server_action == "pending",
                  and_(MessageCopy.server_action == "claimed", MessageCopy.claimed_at < now - CLAIM_LEASE))
    with Session(engine) as session:
        candidates = session.exec(
            select(MessageCopy.id).join(InboundMessage, MessageCopy.inbound_id == InboundMessage.id)
            .where(MessageCopy.mailbox == box.name, MessageCopy.uidvalidity == folder.uidvalidity, waiting,
                   InboundMessage.status != "stored")).all()
        if not candidates:
            return []
        owned = session.execute(update(MessageCopy).where(MessageCopy.id.in_(candidates), waiting)
                                .values(server_action="claimed", claimed_at=now)
                                .returning(MessageCopy.id)).scalars().all()
        session.commit()
        return list(owned)


def last_uid(engine, box: Mailbox) -> int:
    """The highest UID stored from this mailbox's folder (for IDLE's first look)."""
    with Session(engine) as session:
        return mailbox_state(session, box.name, box.folder).last_uid
