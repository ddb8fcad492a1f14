"""What the console's tests share: settings with two departments' review stages, users of
every role, a 稿件 per department written straight into the database (with a file and its
raw message on disk), and a signed-in httpx client on Starlette's TestClient."""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from email.message import EmailMessage
from pathlib import Path

from sqlmodel import Session

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what the lock file pins
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mailbot import clock
from mailbot.store import InboundMessage, RawStore, Submission, SubmissionFile, WebUser
from mailbot.web import users
from mailbot.web.app import create_app

PASSWORD = "correct horse 42"
REVIEW = {
    "reviewers": [
        {"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test"]},
        {"key": "li", "name": "李科长", "addresses": ["reviewer2@example.test"]},
        {"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]},
    ],
    "review": {"stages": {
        "kepu": [{"name": "初审", "reviewers": ["zhang"]}, {"name": "审核", "reviewers": ["wang"]}],
        "xuehui": [{"name": "初审", "reviewers": ["li"]}, {"name": "审核", "reviewers": ["wang"]}],
    }},
}
PEOPLE = {"op": ("operator", None), "kp": ("clerk", "kepu"), "xh": ("clerk", "xuehui"), "boss": ("leader", None)}


@functools.cache
def password_hash() -> str:
    """One argon2 hash of PASSWORD for every user of every test (hashing takes ~0.1–0.4 s)."""
    return users.hash_password(PASSWORD)


def add_people(engine) -> None:
    with Session(engine) as s:
        for name, (role, dept) in PEOPLE.items():
            s.add(WebUser(name=name, role=role, department=dept, password_hash=password_hash()))
        s.commit()


def raw_mail(subject: str, sender: str = "unit1@example.test", html: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "skxkpb@example.test"
    m["Subject"] = subject
    m["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@example.test>"
    if html is not None:
        m.set_content(html, subtype="html")
    else:
        m.set_content("各位老师好")
    return m.as_bytes()


def add_inbound(session: Session, storage: Path, data: bytes, status: str = "parsed", kind: str = "submission",
                reason: str | None = None) -> InboundMessage:
    sha = hashlib.sha256(data).hexdigest()
    rel = RawStore(storage).put(data, sha)
    row = InboundMessage(key=sha, sha256=sha, fingerprint=sha, size=len(data), raw_path=rel, first_mailbox="skxkpb",
                         status=status, kind=kind, reason=reason, subject="来信", from_address="unit1@example.test")
    session.add(row)
    session.flush()
    return row


def add_submission(engine, storage: Path, tracking: str, department: str, title: str = "科普日活动",
                   unit: str = "沂水县科协", files: dict[str, tuple[bytes, str]] | None = None) -> int:
    """A 稿件 received today, with its files under storage/稿件/<tracking>/."""
    with Session(engine) as s:
        row = add_inbound(s, storage, raw_mail(f"稿件 {tracking}"))
        folder = f"稿件/{tracking}"
        sub = Submission(tracking=tracking, department=department, unit=unit, title=title, sender="unit1@example.test",
                         mailbox="skxkpb", route_reason="test", inbound_id=row.id, folder=folder,
                         created_at=clock.now(), updated_at=clock.now())
        s.add(sub)
        s.flush()
        for name, (data, ctype) in (files or {"稿件.txt": (b"text", "text/plain")}).items():
            (storage / folder).mkdir(parents=True, exist_ok=True)
            (storage / folder / name).write_bytes(data)
            s.add(SubmissionFile(submission_id=sub.id, filename=name, path=f"{folder}/{name}", size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest(), content_type=ctype))
        s.commit()
        return sub.id


def client(settings, engine) -> TestClient:
    return TestClient(create_app(settings, engine, on_mail=lambda: None), base_url="http://testserver",
                      follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(c: TestClient, name: str, password: str = PASSWORD):
    token = csrf_of(c.get("/login").text)
    return c.post("/login", data={"name": name, "password": password, "csrf": token, "next": "/"})


def signed_in(settings, engine, name: str) -> tuple[TestClient, str]:
    """A client signed in as `name`, and its CSRF token for forms."""
    c = client(settings, engine)
    assert sign_in(c, name).status_code == 303
    return c, csrf_of(c.get("/").text)
