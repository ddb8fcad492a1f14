"""Helpers for end-to-end tables of cases: one server set per module, emptied between cases,
mail built from a case's data (a reply to one of the robot's own mails, forged headers,
hostile files), and what the robot sent read back from the SMTP server itself."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from pathlib import Path

import pytest
from conftest import stop_in_background
from sqlmodel import Session, select
from test_review import send

from devtools.devservers import MailServers
from mailbot.store import OutboxMessage

HOSTILE_FILES = Path(__file__).parents[1] / "mail" / "hostile"
FORMS = Path(__file__).parents[1] / "forms"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# People the cases write as, besides the servers' default users (names only: Dovecot drops the domain).
EXTRA_USERS = ("stranger", "colleague", "zhao", "kjg", "other", "x")


@pytest.fixture(scope="module")
def module_servers():
    """Dovecot and the SMTP relay, shared by a module's cases: `empty_mailboxes` resets them."""
    srv = MailServers().start()
    for user in EXTRA_USERS:
        srv.dovecot.add_user(user, "secret")
    try:
        yield srv
    finally:
        stop_in_background(srv)


def empty_mailboxes(servers: MailServers) -> None:
    """Expunge every folder of every mailbox that received anything, and forget what the relay saw."""
    home = Path(servers.dir) / "mail"
    for user in sorted(p.name for p in home.iterdir()) if home.exists() else ():
        servers.dovecot.doveadm("expunge", "-u", user, "mailbox", "*", "all")
    servers.smtp.received.clear()


def parsed(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def text_of(msg) -> str:
    body = msg.get_body(("plain",))
    return body.get_content() if body is not None else ""


@dataclass
class Sent:
    """One mail the robot handed to the SMTP server."""

    to: list[str]
    subject: str
    text: str
    attachments: list[str]
    message_id: str

    def says(self, phrase: str) -> bool:
        return phrase in self.subject or phrase in self.text


def robot_sent(servers: MailServers, since: int = 0) -> list[Sent]:
    """Every mail the robot sent through the relay after the `since`-th relayed message
    (ours carry a <mailbot.…> Message-ID; the cases' own mails do not)."""
    out = []
    for _from, rcpts, data in servers.smtp.received[since:]:
        msg = parsed(data)
        message_id = str(msg["Message-ID"] or "").strip()
        if not message_id.startswith("<mailbot."):
            continue
        out.append(Sent([r.lower() for r in rcpts], str(msg["Subject"]), text_of(msg),
                        [p.get_filename() for p in msg.iter_attachments()], message_id))
    return out


def robot_mail(engine, kind: str, to: str):
    """The latest mail of a kind the robot queued for `to`, as a parsed message."""
    with Session(engine) as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.kind == kind, OutboxMessage.to_address == to)
                     .order_by(OutboxMessage.id.desc())).first()
    assert row is not None, f"the robot sent no {kind} to {to}"
    return parsed(row.raw)


def attachment_bytes(spec: dict) -> bytes:
    if "form" in spec:
        return (FORMS / spec["form"]).read_bytes()
    if "fixture" in spec:
        return (HOSTILE_FILES / spec["fixture"]).read_bytes()
    if "repeat" in spec:
        return spec["repeat"].encode() * spec.get("times", 1)
    return spec.get("text", "").encode()


def build_mail(spec: dict, answering=None, values: dict | None = None) -> tuple[bytes, str]:
    """A message from a case's `mail:` data; returns the bytes and the SMTP envelope sender.

    `answering` (a parsed mail of the robot) makes it a reply as QQ writes one: `回复：` and the
    subject, the new text, then the original quoted below a 原始邮件 line; `threaded: true`
    keeps In-Reply-To/References (QQ drops them). `{tracking}`, `{subject}` in subject and
    body are filled from `values`. Headers in `headers:` replace any of the same name (From,
    Sender …); `from` may hold several addresses."""
    values = dict(values or {})
    if answering is not None:
        values.setdefault("subject", str(answering["Subject"]))

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", str(value))
        return text

    m = EmailMessage()
    m["From"] = spec.get("from", "沂水县科协 <unit1@example.test>")
    default_to = answering["From"].addresses[0].addr_spec if answering is not None else "skxkpb@example.test"
    m["To"] = fill(spec.get("to", default_to))
    m["Subject"] = fill(spec.get("subject", "回复：{subject}" if answering is not None else "稿件"))
    m["Message-ID"] = make_msgid(domain="hostile.example")
    if answering is not None and spec.get("threaded"):
        m["In-Reply-To"] = m["References"] = answering["Message-ID"]
    if "sender" in spec:
        m["Sender"] = spec["sender"]
    for key, value in (spec.get("headers") or {}).items():
        del m[key]
        m[key] = fill(value)
    body = fill(spec.get("body", ""))
    if answering is not None and spec.get("quote", True):
        body += (f"\n\n------------------ 原始邮件 ------------------\n发件人: \"科普部\" <{default_to}>;\n"
                 f"发送时间: 2026年12月8日(星期二) 上午9:00\n主题: {answering['Subject']}\n\n{text_of(answering)}")
    m.set_content(body)
    for f in spec.get("files") or ():
        maintype, subtype = f.get("type", DOCX).split("/")
        m.add_attachment(attachment_bytes(f), maintype=maintype, subtype=subtype, filename=f["name"])
    envelope = spec.get("envelope") or getaddresses([str(m["From"])])[0][1]
    return m.as_bytes(), envelope


def deliver(servers: MailServers, raw: bytes, envelope: str, to: str = "skxkpb@example.test") -> None:
    send(servers, raw, envelope, [to])
