"""Frozen values passed between the layers: a raw message, a parsed message and its parts.

Nothing here does I/O. `Mail.to_json()` is the `mailbot parse --json` contract
(../shared/contract/parse.schema.json): fields may be added, never renamed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RawMail:
    """One message as bytes, with where it came from (mailbox, UIDVALIDITY, UID)."""

    data: bytes
    mailbox: str = ""
    uidvalidity: int | None = None
    uid: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Address:
    name: str
    address: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    safe_name: str
    size: int
    sha256: str
    content_type: str
    declared_type: str
    disposition: str
    in_forwarded_message: bool
    content_id: str | None = None
    data: bytes = field(default=b"", repr=False, compare=False)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("data")
        return out


@dataclass(frozen=True)
class ForwardedMessage:
    subject: str
    from_: Address | None
    message_id: str | None
    date: str | None = None
    text: str = ""

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "subject": self.subject,
            "from": asdict(self.from_) if self.from_ else None,
            "message_id": self.message_id,
            "date": self.date,
        }


@dataclass(frozen=True)
class LargeAttachmentLink:
    provider: str
    name: str
    size: str | None
    expires: str | None
    url: str | None


@dataclass(frozen=True)
class Mail:
    """A parsed message. Text is already decoded; attachments carry their bytes."""

    message_id: str | None
    key: str
    sha256: str
    subject: str
    from_: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    html: str | None
    html_only: bool
    attachments: tuple[Attachment, ...]
    forwarded_messages: tuple[ForwardedMessage, ...]
    large_attachment_links: tuple[LargeAttachmentLink, ...]
    unit_signature: str | None
    auto_reply: bool
    auto_reply_reason: str | None
    bounce: bool
    bounce_reason: str | None
    defects: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    size: int = 0
    received: tuple[dict, ...] = field(default=(), repr=False)
    mailing_list: bool = False

    def header(self, name: str) -> str | None:
        """First decoded header of that name (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def to_json(self) -> dict:
        """The `mailbot parse --json` object."""
        return {
            "message_id": self.message_id,
            "key": self.key,
            "sha256": self.sha256,
            "size": self.size,
            "subject": self.subject,
            "from": asdict(self.from_),
            "to": [asdict(a) for a in self.to],
            "cc": [asdict(a) for a in self.cc],
            "reply_to": [asdict(a) for a in self.reply_to],
            "date": self.date.isoformat() if self.date else None,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "text": self.text,
            "html": self.html[:200_000] if self.html else None,
            "html_only": self.html_only,
            "attachments": [a.to_json() for a in self.attachments],
            "forwarded_messages": [f.to_json() for f in self.forwarded_messages],
            "large_attachment_links": [asdict(link) for link in self.large_attachment_links],
            "unit_signature": self.unit_signature,
            "auto_reply": self.auto_reply,
            "auto_reply_reason": self.auto_reply_reason,
            "bounce": self.bounce,
            "bounce_reason": self.bounce_reason,
            "defects": list(self.defects),
            "received": list(self.received),
            "mailing_list": self.mailing_list,
            "trace_headers": [(k, v) for k, v in self.headers
                              if k.lower() in ("delivered-to", "x-original-to", "authentication-results")],
        }
