"""Who does what when several workers (`mailbot run` processes) share one database.

A lease is a named lock held by one worker until it exits: on PostgreSQL a session advisory lock
on a connection kept for the purpose (the server frees it the moment the worker's connection
closes, so a SIGKILLed worker hands over at once); on SQLite an fcntl lock on a file in the
storage folder (freed by the kernel when the process dies). Leases are taken, never waited for:
a worker that cannot take one tries again later (`RETRY` seconds).

    mailbox:<name>   reads that mailbox (one reader per mailbox across workers)
    scheduler        runs the shared periodic jobs (reminders, the weekly digest)
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from pathlib import Path

from sqlalchemy import text

log = logging.getLogger("mailbot.leases")
RETRY = 5.0  # seconds between attempts at a lease another worker holds
NAMESPACE = 0x6D62  # "mb": the first key of our advisory locks, apart from other applications'


class Leases:
    """The leases of one worker: `take(name)` is True when this worker holds it now."""

    def __init__(self, engine, storage: Path):
        self.engine, self.folder = engine, Path(storage) / "leases"
        self.held: dict[str, object] = {}  # name -> the file (SQLite) or True (PostgreSQL)
        self.lock = threading.Lock()
        self.conn = None  # PostgreSQL: the connection that owns the advisory locks
        self.postgres = engine.dialect.name == "postgresql"
        self.scope = ""

    def take(self, name: str) -> bool:
        with self.lock:
            if name in self.held:
                return True
            try:
                got = self._take_pg(name) if self.postgres else self._take_file(name)
            except Exception as exc:  # the database is away: nobody's lease can be checked; try later
                log.warning("lease %s: cannot take it (%s)", name, exc.__class__.__name__)
                self._drop_connection()
                return False
            if got:
                log.info("lease %s taken by this worker (pid %d)", name, os.getpid())
            return got

    def holds(self, name: str) -> bool:
        with self.lock:
            return name in self.held

    def check(self) -> None:
        """PostgreSQL: if the lock connection broke, every lease went with it; forget them."""
        if not self.postgres:
            return
        with self.lock:
            if self.conn is None:
                return
            try:
                self.conn.execute(text("select 1"))
            except Exception as exc:
                log.warning("the lease connection was lost (%s); giving up %s", exc.__class__.__name__,
                            ", ".join(sorted(self.held)) or "no leases")
                self._drop_connection()

    def close(self) -> None:
        with self.lock:
            for handle in self.held.values():
                if hasattr(handle, "close"):
                    handle.close()
            self.held.clear()
            self._drop_connection()

    # --- PostgreSQL ---------------------------------------------------------------------

    def _take_pg(self, name: str) -> bool:
        if self.conn is None:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.scope = self.conn.execute(text("select current_database() || '.' || current_schema()")).scalar()
        key = zlib.crc32(f"{self.scope}:{name}".encode()) - (1 << 31)  # a signed int4
        got = self.conn.execute(text("select pg_try_advisory_lock(:ns, :key)"), {"ns": NAMESPACE, "key": key}).scalar()
        if got:
            self.held[name] = True
        return bool(got)

    def _drop_connection(self) -> None:
        if self.postgres:
            self.held.clear()
        if self.conn is not None:
            try:  # really disconnect: back in the pool the session would keep its advisory locks
                self.conn.invalidate()
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    # --- SQLite: one file per lease -------------------------------------------------------

    def _take_file(self, name: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / (name.replace(":", "-").replace("/", "_") + ".lock"), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.held[name] = handle
        return True
