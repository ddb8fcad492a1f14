"""The only IMAP code: connect (TLS modes, ID), sync new UIDs, IDLE, act on the server after commit.

Progress is UIDVALIDITY + the highest UID stored, kept in the database and moved in
the same commit as the stored rows. Messages are fetched with BODY.PEEK[] (no \\Seen),
in batches bounded by count and bytes. Only after the commit is a message flagged or
moved (quarantine); nothing is ever deleted.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
import time
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlmodel import Session, select

from . import clock
from . import pipeline
from .config import Mailbox, Settings
from .models import RawMail
from .pipeline import Counts
from .store import InboundMessage, MessageCopy, RawStore, log_event, mailbox_state

log = logging.getLogger("mailbot.ingest")
FLAG_STORED = b"$MailbotStored"
ID_FIELDS = {"name": "mailbot", "version": "0.1", "vendor": "mailbot", "support-email": "postmaster@localhost"}
NETWORK_ERRORS = (OSError, socket.timeout, ssl.SSLError, imaplib.IMAP4.abort, EOFError)


class MailboxError(Exception):
    """A mailbox cannot be used; `message` is for people (Chinese), `kind` for code."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def connect(box: Mailbox, password: str) -> IMAPClient:
    """Log in, send ID when offered (NetEase refuses SELECT without it), select the folder."""
    where = f"{box.host}:{box.port}"
    context = ssl.create_default_context()
    if not box.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        client = IMAPClient(box.host, port=box.port, ssl=box.tls == "implicit",
                            ssl_context=context, timeout=box.timeout)
        if box.tls == "starttls":
            client.starttls(context)
    except ssl.SSLError as exc:
        raise MailboxError("tls", f"邮箱 {box.name}：与 {where} 建立加密连接失败（{exc.reason or exc}），请检查 tls 设置") from None
    except (socket.gaierror,) as exc:
        raise MailboxError("network", f"邮箱 {box.name}：找不到服务器 {box.host}（{exc.strerror}）") from None
    except NETWORK_ERRORS as exc:
        raise MailboxError("network", f"邮箱 {box.name}：无法连接 {where}（{_why(exc)}）") from None
    except IMAPClientError as exc:
        raise MailboxError("protocol", f"邮箱 {box.name}：服务器 {where} 的回应异常（{exc}）") from None
    # imapclient turns on imaplib's debug level 5, which makes imaplib format a repr() of
    # every fetched message (even unlogged): 6x slower FETCH and 3x the memory.
    client._imap.debug = 0
    try:
        client.login(box.user, password)
    except LoginError:
        _close(client)
        raise MailboxError("auth", f"邮箱 {box.name}：用户名或密码（授权码）不正确，服务器拒绝登录（用户 {box.user}）") from None
    except NETWORK_ERRORS as exc:
        raise MailboxError("network", f"邮箱 {box.name}：登录时连接中断（{_why(exc)}）") from None
    try:
        if b"ID" in client.capabilities():
            client.id_(ID_FIELDS)
    except IMAPClientError as exc:
        log.info("%s: ID refused (%s); going on", box.name, exc)
    return client


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "连接被拒绝，服务器没有在该端口监听"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "连接超时"
    return getattr(exc, "strerror", None) or exc.__class__.__name__


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # closing a broken connection: nothing more to do
        pass


@dataclass
class Folder:
    uidvalidity: int
    can_flag: bool
    exists: int


def open_folder(client: IMAPClient, box: Mailbox) -> Folder:
    info = client.select_folder(box.folder)
    flags = info.get(b"PERMANENTFLAGS", ())
    return Folder(uidvalidity=int(info[b"UIDVALIDITY"]), can_flag=b"\\*" in flags,
                  exists=int(info.get(b"EXISTS", 0)))


def sync(client: IMAPClient, box: Mailbox, settings: Settings, engine, raws: RawStore,
         processor: pipeline.Processor) -> Counts:
    """Fetch and store every new message, process it, then flag or quarantine it on the server.

    Parsing runs in the processor's worker while the next batch is fetched and stored.
    """
    folder = open_folder(client, box)
    last_uid = _progress(engine, box, folder.uidvalidity)
    uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
    counts = Counts()
    for batch in _batches(client, uids, settings.batch_size, settings.batch_bytes):
        got = _fetch(client, box, folder.uidvalidity, batch, engine)
        counts.fetch_failed += len(batch) - len(got)
        try:
            counts.add(pipeline.keep_batch(engine, raws, got, box.folder,
                                           _advance(box, folder.uidvalidity, max(batch))))
        except OSError as exc:  # disk full, permissions: nothing was committed, nothing is lost
            raise MailboxError("storage", f"邮箱 {box.name}：无法把邮件写入存储目录 {raws.root}"
                                          f"（{exc.strerror or exc}），请检查磁盘空间和权限；"
                                          "邮件仍在服务器上，恢复后会继续") from None
        del got  # stored on disk now: parsing reads it back, so a 40 MB message is not held twice
        processor.submit()
        counts.add(processor.collect())
    counts.add(processor.drain())
    apply_server_actions(client, box, folder, engine, settings.mark_processed)
    _touch(engine, box)
    return counts


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


def _batches(client: IMAPClient, uids: list[int], count: int, max_bytes: int):
    """Groups of UIDs bounded by count and total size, so one huge message travels alone."""
    for start in range(0, len(uids), 1000):
        chunk = uids[start:start + 1000]
        sizes = client.fetch(chunk, ["RFC822.SIZE"])
        batch: list[int] = []
        total = 0
        for uid in chunk:
            if uid not in sizes:
                continue  # expunged meanwhile
            size = int(sizes[uid].get(b"RFC822.SIZE", 0))
            if batch and (len(batch) >= count or total + size > max_bytes):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch


def _fetch(client: IMAPClient, box: Mailbox, uidvalidity: int, uids: list[int], engine) -> list[RawMail]:
    """BODY.PEEK[] for a batch; on a server error, one by one, recording the ones that fail."""
    try:
        data = client.fetch(uids, ["BODY.PEEK[]"])
    except IMAPClientError as exc:
        log.warning("%s: batch fetch failed (%s); fetching one by one", box.name, exc)
        data = {}
        for uid in uids:
            try:
                data.update(client.fetch([uid], ["BODY.PEEK[]"]))
            except IMAPClientError as one:
                _fetch_failed(engine, box, uidvalidity, uid, str(one))
    out = []
    for uid in uids:
        body = data.get(uid, {}).get(b"BODY[]")
        if body is None:
            continue  # expunged by someone else between SEARCH and FETCH: nothing to keep
        out.append(RawMail(data=bytes(body), mailbox=box.name, uidvalidity=uidvalidity, uid=uid))
    return out


def _fetch_failed(engine, box: Mailbox, uidvalidity: int, uid: int, why: str) -> None:
    with Session(engine) as session:
        session.add(MessageCopy(mailbox=box.name, folder=box.folder, uidvalidity=uidvalidity, uid=uid,
                                server_action="none", server_note=f"fetch failed: {why}"))
        log_event(session, "fetch-failed", f"uid {uid}: {why}", mailbox=box.name)
        session.commit()


def apply_server_actions(client: IMAPClient, box: Mailbox, folder: Folder, engine, mark: bool = True) -> None:
    """After the commit: flag processed copies, move filed ones to their unit's folder and
    quarantined ones to the quarantine folder. Nothing is deleted without a copy elsewhere."""
    with Session(engine) as session:
        rows = session.exec(
            select(MessageCopy, InboundMessage.status)
            .join(InboundMessage, MessageCopy.inbound_id == InboundMessage.id)
            .where(MessageCopy.mailbox == box.name, MessageCopy.uidvalidity == folder.uidvalidity,
                   MessageCopy.server_action == "pending", InboundMessage.status != "stored")).all()
        moves: dict[str, list[int]] = {}
        stay = []
        for copy, status in rows:
            target = box.quarantine_folder if status == "quarantined" else copy.target_folder
            if target:
                moves.setdefault(target, []).append(copy.uid)
            else:
                stay.append(copy.uid)
        if mark and folder.can_flag and (stay or moves):
            client.add_flags(stay + [u for uids in moves.values() for u in uids], [FLAG_STORED], silent=True)
        notes: dict[int, str] = {}
        for target, uids in moves.items():
            try:
                notes.update(_move(client, box, uids, target))
            except IMAPClientError as exc:  # e.g. another robot or a person moved some first
                notes.update(_move_what_is_left(client, box, folder, uids, target, exc))
        for copy, _status in rows:
            copy.server_action = "done"
            copy.server_note = notes.get(copy.uid, copy.server_note)
        session.commit()


def _move_what_is_left(client: IMAPClient, box: Mailbox, folder: Folder, uids: list[int], path: str,
                       exc: Exception) -> dict[int, str]:
    """After a failed MOVE: look again, move what is still there, note what is gone."""
    open_folder(client, box)
    present = set(client.search(["UID", ",".join(map(str, uids))])) if uids else set()
    notes = {u: f"already gone from {box.folder} when moving ({exc})" for u in uids if u not in present}
    if present:
        notes.update(_move(client, box, sorted(present), path))
    return notes


def _move(client: IMAPClient, box: Mailbox, uids: list[int], path: str) -> dict[int, str]:
    """MOVE where the server has it; else COPY, then delete only the copied originals."""
    target = folder_path(client, path)
    if not client.folder_exists(target):
        client.create_folder(target)
    if client.has_capability("MOVE"):
        client.move(uids, target)
        return {u: f"moved to {path}" for u in uids}
    client.copy(uids, target)
    client.delete_messages(uids)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)  # only these UIDs: never someone else's \Deleted mail
    return {u: f"copied to {path}" for u in uids}


def folder_path(client: IMAPClient, path: str) -> str:
    """'a/b' in the server's own hierarchy delimiter."""
    try:
        personal = client.namespace().personal
        delim = personal[0][1] if personal and personal[0][1] else "/"
    except IMAPClientError:
        delim = "/"
    if isinstance(delim, bytes):
        delim = delim.decode()
    return delim.join(path.split("/"))


def wait_for_news(client: IMAPClient, box: Mailbox, settings: Settings, engine, stop, poke=None) -> None:
    """Block until the server reports new mail (IDLE), the scheduler's poll job pokes this
    mailbox (or, without a scheduler, the poll interval passes), or `stop` is set.

    Before IDLE the folder is re-selected and searched once: an EXISTS that arrived during
    our own last commands was consumed by them and would not be announced again.
    """
    if not (settings.idle and client.has_capability("IDLE")):
        if poke is None:
            stop.wait(settings.poll_interval)
            return
        # a dead-man's limit: should the scheduler stall, the reader still polls now and then
        deadline = time.monotonic() + settings.poll_interval * 5
        while not stop.is_set() and not poke.is_set() and time.monotonic() < deadline:
            poke.wait(0.5)
        poke.clear()
        return
    open_folder(client, box)
    with Session(engine) as session:
        last_uid = mailbox_state(session, box.name, box.folder).last_uid
    if any(u > last_uid for u in client.search(["UID", f"{last_uid + 1}:*"])):
        return
    client.idle()
    try:
        deadline = time.monotonic() + settings.idle_timeout
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            responses = client.idle_check(timeout=1)
            if not responses and time.monotonic() - started < 0.9:
                # imapclient swallows EOF in idle_check: readable with nothing to read is a
                # closed connection (server restart), not silence.
                raise ConnectionError("server closed the connection during IDLE")
            if any(len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                break
    finally:
        try:
            client.idle_done()
        except (IMAPClientError, *NETWORK_ERRORS):
            raise ConnectionError("connection lost while leaving IDLE") from None
