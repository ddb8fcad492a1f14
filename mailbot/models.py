"""Frozen values passed between the layers: a raw message, a parsed message and its parts,
its route, the attachments staged for filing, and what the parse worker hands back.

Nothing here does I/O. `Mail.to_json()` is the `mailbot parse --json` contract
(../shared/contract/parse.schema.json): fields may be added, never renamed; `Mail.from_json`
reads it back (without attachment bytes), so the handlers work on values, not dicts.
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
    from_all: tuple[Address, ...] = ()  # every address in From (one, normally)
    sender: Address | None = None  # the Sender header, when there is one

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
            "from_all": [asdict(a) for a in self.from_all],
            "sender": asdict(self.sender) if self.sender else None,
            "trace_headers": [(k, v) for k, v in self.headers
                              if k.lower() in ("delivered-to", "x-original-to", "authentication-results")],
        }


def _address(data: dict | None) -> Address:
    return Address(name=(data or {}).get("name") or "", address=(data or {}).get("address") or "")


def mail_from_json(data: dict) -> Mail:
    """A `Mail` from its `to_json()` object: what the handlers act on after the parse worker.
    Attachment bytes are not in it (the files are staged on disk); of the headers, only the
    trace headers the JSON keeps (Delivered-To, X-Original-To, Authentication-Results)."""
    date = data.get("date")
    return Mail(
        message_id=data.get("message_id"), key=data.get("key") or "", sha256=data.get("sha256") or "",
        subject=data.get("subject") or "", from_=_address(data.get("from")),
        to=tuple(_address(a) for a in data.get("to") or ()), cc=tuple(_address(a) for a in data.get("cc") or ()),
        reply_to=tuple(_address(a) for a in data.get("reply_to") or ()),
        date=datetime.fromisoformat(date) if date else None, in_reply_to=data.get("in_reply_to"),
        references=tuple(data.get("references") or ()), text=data.get("text") or "", html=data.get("html"),
        html_only=bool(data.get("html_only")),
        attachments=tuple(Attachment(**a) for a in data.get("attachments") or ()),
        forwarded_messages=tuple(ForwardedMessage(subject=f.get("subject") or "", from_=_address(f["from"])
                                                  if f.get("from") else None, message_id=f.get("message_id"),
                                                  date=f.get("date"), text=f.get("text") or "")
                                 for f in data.get("forwarded_messages") or ()),
        large_attachment_links=tuple(LargeAttachmentLink(link.get("provider") or "", link.get("name") or "",
                                                         link.get("size"), link.get("expires"), link.get("url"))
                                     for link in data.get("large_attachment_links") or ()),
        unit_signature=data.get("unit_signature"), auto_reply=bool(data.get("auto_reply")),
        auto_reply_reason=data.get("auto_reply_reason"), bounce=bool(data.get("bounce")),
        bounce_reason=data.get("bounce_reason"), defects=tuple(data.get("defects") or ()),
        headers=tuple(tuple(h) for h in data.get("trace_headers") or ()), size=data.get("size") or 0,
        received=tuple(data.get("received") or ()), mailing_list=bool(data.get("mailing_list")),
        from_all=tuple(_address(a) for a in data.get("from_all") or ()),
        sender=_address(data["sender"]) if data.get("sender") else None)


@dataclass(frozen=True)
class Route:
    """What a message is and where it goes (routing.classify), every decision with its reason.
    A form also carries the forms read from its attachments, or the campaign a scan answers."""

    kind: str
    unit: str | None
    unit_known: bool
    department: str | None  # department key
    department_name: str | None
    reason: str
    tracking: str | None = None
    category: str | None = None
    claimed_unit: str | None = None  # a unit name the message gives that is not in the roster
    forms: tuple[dict, ...] = ()  # kind form: [{"index": attachment index, "result": FormResult dict}]
    campaign: str | None = None  # kind form, a scan answering this campaign's mail

    def to_json(self) -> dict:
        """The `classification` of `mailbot parse --json` (and the stored route)."""
        return {"kind": self.kind, "unit": self.unit, "department": self.department_name,
                "reason": self.reason, "department_key": self.department, "unit_known": self.unit_known,
                "tracking": self.tracking, "category": self.category, "claimed_unit": self.claimed_unit}

    @classmethod
    def from_json(cls, data: dict) -> "Route":
        return cls(kind=data["kind"], unit=data.get("unit"), unit_known=bool(data.get("unit_known")),
                   department=data.get("department_key"), department_name=data.get("department"),
                   reason=data.get("reason") or "", tracking=data.get("tracking"), category=data.get("category"),
                   claimed_unit=data.get("claimed_unit"))


OUTCOMES = ("filed", "answered", "applied", "ignored", "needs-person")


@dataclass(frozen=True)
class Handled:
    """What became of one received message (`inbound_message.outcome`): filed (a 稿件, a
    revision, a form), answered (the sender was told something), applied (a decision),
    ignored (with its reason: auto-reply, bounce, list, own mail, acknowledgement …) or
    needs-person (held, quarantined, not understood). `reason` is for the operator."""

    kind: str
    reason: str
    submission_id: int | None = None


@dataclass(frozen=True)
class Staged:
    """An attachment written to the staging folder by the parse worker; filing moves it."""

    path: str
    filename: str
    safe_name: str
    size: int
    sha256: str
    content_type: str
    in_forwarded_message: bool = False  # inside a forwarded message, not the sender's own file
    problem: str | None = None  # why it cannot be opened (read.usable), for the unit and the reviewer


@dataclass(frozen=True)
class Parsed:
    """What the parse worker hands back across the process boundary (pickled).

    `status` is 'parsed' or 'quarantined' (then `reason` says why, for the operator).
    `summary` is the `mailbot parse --json` object as JSON text, stored as it is; `columns`
    are the fields the database indexes; `route` and `staged` exist when a configuration
    classified the message."""

    status: str
    reason: str | None = None
    summary: str | None = None
    columns: dict = field(default_factory=dict)
    route: Route | None = None
    staged: tuple[Staged, ...] = ()

    @classmethod
    def quarantined(cls, reason: str) -> "Parsed":
        return cls("quarantined", reason=reason)
