"""The console's people: a `web_user` row each (name, role, department, argon2 hash),
managed with `mailbot users add`. Roles: operator (everything), clerk (one department),
leader (read-only, everything)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from mailbot.store import WebUser

ROLES = {"operator": "管理员", "clerk": "科室联络员", "leader": "领导（只读）"}
_hasher = PasswordHasher()
# A hash to verify against when the name is unknown, so an unknown name takes as long as a wrong password.
_DUMMY = _hasher.hash("no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(session: Session, name: str, role: str, password: str, department: str | None = None) -> WebUser:
    """Create a user, or set the role, department and password of an existing one."""
    if role not in ROLES:
        raise ValueError(role)
    user = session.exec(select(WebUser).where(WebUser.name == name)).first()
    if user is None:
        user = WebUser(name=name, role=role, password_hash="")
        session.add(user)
    user.role, user.department, user.active = role, department if role == "clerk" else None, True
    user.password_hash = hash_password(password)
    return user


def check_password(session: Session, name: str, password: str) -> WebUser | None:
    """The active user with this name and password, or None (same work either way)."""
    user = session.exec(select(WebUser).where(WebUser.name == name, WebUser.active.is_(True))).first()
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return user if ok and user is not None else None
