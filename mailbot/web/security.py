"""Who is signed in and what they may do: signed session cookies (Starlette's
SessionMiddleware), a CSRF token per session checked on every form, sign-in throttling
per user and address, role and department checks, and paths that cannot leave storage."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Staff:
    """The signed-in person as the pages see them."""

    id: int
    name: str
    role: str  # operator | clerk | leader
    department: str | None

    @property
    def can_act(self) -> bool:
        return self.role in ("operator", "clerk")

    def sees(self, department: str | None) -> bool:
        """Whether this person may see (and, unless a leader, act on) a department's things."""
        return self.role != "clerk" or (department is not None and department == self.department)

    @property
    def scope(self) -> str | None:
        """The one department a clerk is limited to; None for everyone else."""
        return self.department if self.role == "clerk" else None


class Denied(Exception):
    """Not signed in, a bad CSRF token, or a role that may not do this: the app answers 403."""


class NotFound(Exception):
    """No such thing, or one the person may not see (both look the same from outside)."""


def read_secret(settings) -> str:
    """The session-signing key: the environment variable, else a private file in storage (made once)."""
    value = os.environ.get(settings.web.secret_env)
    if value:
        return value
    path = Path(settings.storage) / "web.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def csrf_token(session: dict) -> str:
    """This session's form token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf(session: dict, sent: str | None) -> None:
    expected = session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Denied("csrf")


class Throttle:
    """At most `limit` failed sign-ins per (name, address) within `window`; kept in memory,
    as the console is one process. A success clears the count."""

    def __init__(self, limit: int, window: timedelta):
        self.limit, self.window = limit, window
        self.failures: dict[tuple[str, str], deque] = {}
        self.lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: datetime) -> deque:
        times = self.failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, name: str, address: str, now: datetime) -> bool:
        with self.lock:
            return len(self._recent((name.lower(), address), now)) >= self.limit

    def failed(self, name: str, address: str, now: datetime) -> None:
        with self.lock:
            self._recent((name.lower(), address), now).append(now)

    def cleared(self, name: str, address: str) -> None:
        with self.lock:
            self.failures.pop((name.lower(), address), None)


def inside(storage: Path, relative: str) -> Path:
    """The file `relative` under storage; NotFound if it would resolve outside it (../, a
    symlink, an absolute path) or is not a file."""
    root = Path(storage).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(relative)
    return path


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (no //host, scheme or backslash)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 32 for ch in value):  # a header split or a tab-smuggled //host
        return "/"
    return value
