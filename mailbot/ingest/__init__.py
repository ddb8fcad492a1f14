"""The only IMAP code, and nothing but IMAP: connect (TLS modes, ID), select, search new
UIDs, fetch with BODY.PEEK[] (no \\Seen) in batches bounded by count and bytes, IDLE, flag
and move. No database, no pipeline: `mailbot.pipeline.sync` drives it, keeps the progress
and decides what to flag or move after its commit. Nothing is ever deleted.
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

from mailbot.config import Mailbox, Settings
from mailbot.models import RawMail

log = logging.getLogger("mailbot.ingest")
FLAG_STORED = b"$MailbotStored"
ID_FIELDS = {"name": "mailbot", "version": "0.1", "vendor": "mailbot", "support-email": "postmaster@localhost"}
IDLE_RECHECK = 60.0  # seconds an IDLE may last before the folder is searched again
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
        close(client)
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


def close(client: IMAPClient) -> None:
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


class Batch(list):
    """UIDs to fetch together, with their total size as the server gave it (`size`)."""

    size: int = 0


def batches(client: IMAPClient, uids: list[int], count: int, max_bytes: int):
    """Groups of UIDs bounded by count and total size, so one huge message travels alone."""
    for start in range(0, len(uids), 1000):
        chunk = uids[start:start + 1000]
        sizes = client.fetch(chunk, ["RFC822.SIZE"])
        batch = Batch()
        for uid in chunk:
            if uid not in sizes:
                continue  # expunged meanwhile
            size = int(sizes[uid].get(b"RFC822.SIZE", 0))
            if batch and (len(batch) >= count or batch.size + size > max_bytes):
                yield batch
                batch = Batch()
            batch.append(uid)
            batch.size += size
        if batch:
            yield batch


def fetch(client: IMAPClient, box: Mailbox, uidvalidity: int, uids: list[int],
          failed: list[tuple[int, str]]) -> list[RawMail]:
    """BODY.PEEK[] for a batch; on a server error, one by one, adding the ones that fail
    (UID, why) to `failed` for the caller to record."""
    try:
        data = client.fetch(uids, ["BODY.PEEK[]"])
    except IMAPClientError as exc:
        log.warning("%s: batch fetch failed (%s); fetching one by one", box.name, exc)
        data = {}
        for uid in uids:
            try:
                data.update(client.fetch([uid], ["BODY.PEEK[]"]))
            except IMAPClientError as one:
                failed.append((uid, str(one)))
    out = []
    for uid in uids:
        body = data.get(uid, {}).get(b"BODY[]")
        if body is None:
            continue  # expunged by someone else between SEARCH and FETCH: nothing to keep
        out.append(RawMail(data=bytes(body), mailbox=box.name, uidvalidity=uidvalidity, uid=uid))
    return out


def new_uids(client: IMAPClient, last_uid: int) -> list[int]:
    """The UIDs above `last_uid` in the selected folder, in order."""
    return sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)


def flag(client: IMAPClient, uids: list[int]) -> None:
    """Mark copies as kept by the robot (only after the commit that stored them)."""
    if uids:
        client.add_flags(uids, [FLAG_STORED], silent=True)


def move(client: IMAPClient, box: Mailbox, folder: Folder, uids: list[int], path: str,
         attempts: int = 3) -> dict[int, str]:
    """Move copies to `path` (a unit's folder, the quarantine); a note per UID. Another robot
    or a person may move some of them meanwhile (EXPUNGEISSUED): look again and move what is
    left, a few times; what still cannot be moved stays where it is, noted, never an error."""
    notes: dict[int, str] = {}
    left = list(uids)
    for _ in range(attempts):
        try:
            notes.update(_move(client, box, left, path))
            return notes
        except IMAPClientError as exc:  # e.g. another robot or a person moved some first
            open_folder(client, box)
            present = set(client.search(["UID", ",".join(map(str, left))])) if left else set()
            notes.update({u: f"already gone from {box.folder} when moving ({exc})" for u in left if u not in present})
            left = sorted(present)
            if not left:
                return notes
            last = exc
    notes.update({u: f"not moved to {path} after {attempts} attempts ({last}); left in {box.folder}" for u in left})
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


def wait_for_news(client: IMAPClient, box: Mailbox, settings: Settings, last_uid, stop, poke=None) -> None:
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
    if new_uids(client, last_uid()):
        return
    pending = client._imap.untagged_responses  # imaplib keeps what came before IDLE's "+" here
    pending.pop("EXISTS", None)
    pending.pop("RECENT", None)
    client.idle()
    try:
        if pending.get("EXISTS") or pending.get("RECENT"):
            return  # mail arrived between the search and IDLE: announced before "+ idling"
        # A message that lands between the search and IDLE may not be announced during IDLE
        # (Dovecot tells it only when IDLE ends): look again at least every IDLE_RECHECK seconds.
        deadline = time.monotonic() + min(settings.idle_timeout, IDLE_RECHECK)
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
