"""Bytes → `Mail`: headers, text, attachments, forwarded messages, auto-reply and bounce flags.

The stdlib parser (compat32, the most forgiving) builds the MIME tree; every header,
body and file name is decoded by our own charset layer (`mailbot.charset`), because
the stdlib and mail-parser silently garble GB2312-labelled GBK text and raw 8-bit
headers. `parse()` never raises for broken mail: it repairs and records defects.
Only bytes that are not a message at all raise `UnreadableMessage`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html as htmllib
import os
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy, utils
from email.message import Message, _parseparam

import pybase64

from mailbot.models import (
    Address,
    Attachment,
    ForwardedMessage,
    LargeAttachmentLink,
    Mail,
)
from mailbot.read.charset import decode_bytes, decode_header_value, header_bytes
from mailbot.read.sniff import extension_for, sniff_type

CHINA = timezone(timedelta(hours=8))
MAX_DEPTH = 8  # forwarded-inside-forwarded nesting we follow before giving up


class UnreadableMessage(ValueError):
    """The bytes are not an email message at all (no header could be read)."""


# --- fast path for large attachments ---------------------------------------------
# The stdlib feed parser walks base64 bodies line by line (~25 ms per MB). Large
# base64 blocks are cut out before parsing and decoded straight from the raw bytes.

_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t"
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HOLLOW_MIN = 65536


def _cte_headers(raw: bytes):
    """Positions of Content-Transfer-Encoding headers (any letter case), found with
    memchr-fast searches (no lower-cased copy of a 40 MB message). Yields (position, end of
    line); the caller sends back where to continue, and the next search starts there, so a
    base64 body is never scanned."""
    pos = 0
    while True:
        lower = raw.find(b"ransfer-", pos)
        # an all-capitals header, looked for only as far as the next lower-case one
        upper = raw.find(b"RANSFER-", pos, lower if lower >= 0 else len(raw))
        p = upper if upper >= 0 else lower
        if p < 0:
            return
        pos = p + 8
        if raw[max(0, p - 9):p].lower() != b"content-t" or raw[p + 8:p + 17].lower() != b"encoding:":
            continue
        eol = raw.find(b"\n", p)
        if eol < 0:
            return
        resume = yield p, eol
        if resume:
            pos = max(pos, resume)


def hollow(raw: bytes, nonce: str) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """Replace each large base64 body with a placeholder; return the skeleton and blob ranges.

    A body runs from the blank line after its headers to the next boundary line ("\n--",
    which base64 never contains). Characters outside the alphabet are ignored when it is
    decoded, exactly as the stdlib's own base64 decoding does.
    """
    out: list[bytes] = []
    blobs: dict[str, tuple[int, int]] = {}
    pos = 0
    headers = _cte_headers(raw)
    found = next(headers, None)
    while found is not None:
        p, eol = found
        resume = None
        value = raw[p + 17:eol].strip(b' \t\r"\'').lower()
        blank = _BLANK_LINE.search(raw, eol - 1) if value == b"base64" else None
        if blank:
            start = blank.end()
            end = raw.find(b"\n--", start)
            end = len(raw) if end < 0 else end + 1
            if end - start >= _HOLLOW_MIN:
                token = f"MAILBOTBLOB{nonce}{len(blobs):06d}"
                blobs[token] = (start, end)
                out += [raw[pos:start], token.encode("ascii"), b"\n"]
                pos = resume = end
        try:
            found = headers.send(resume)
        except StopIteration:
            found = None
    if not blobs:
        return raw, blobs
    out.append(raw[pos:])
    return b"".join(out), blobs


# --- entry point -------------------------------------------------------------------


def parse(raw: bytes, sha256: str | None = None) -> Mail:
    """Parse one message. Raises UnreadableMessage only for bytes that hold no header."""
    sha = sha256 or hashlib.sha256(raw).hexdigest()
    skeleton, blobs = hollow(raw, os.urandom(6).hex().upper())
    msg = message_from_bytes(skeleton, policy=policy.compat32)
    ctx = _Context(raw, blobs)
    if not msg.keys() or _first_line_is_junk(skeleton):
        repaired, dropped = repair_header_block(skeleton)
        if dropped or repaired != skeleton:
            ctx.defects.append(f"header-block-repaired: {dropped} unreadable header line(s) set aside")
            msg = message_from_bytes(repaired, policy=policy.compat32)
    if not msg.keys():
        raise UnreadableMessage("no header could be read: this is not an email message")
    ctx.hint = _first_charset(msg)
    headers = _decoded_headers(msg, ctx)
    message_id = _message_id(_raw_get(msg, "message-id"))
    subject = _header(msg, "subject", ctx)
    own_from = _addresses(msg, "from", ctx)
    sender_list = _addresses(msg, "sender", ctx)
    from_list = own_from or sender_list
    if not from_list:
        ctx.defects.append("from-missing: no usable From address")
    _walk(msg, ctx, forwarded=False, depth=0)
    text, html_text, html_only = _body_text(ctx)
    auto, auto_reason = _auto_reply(msg, subject, text, from_list, ctx)
    mailing_list = any(_raw_get(msg, h) is not None for h in ("list-id", "list-unsubscribe", "list-post"))
    bounce, bounce_reason = _bounce(msg, subject, from_list, ctx)
    return Mail(
        message_id=message_id,
        key=message_id or f"sha256:{sha}",
        sha256=sha,
        subject=subject,
        from_=from_list[0] if from_list else Address("", ""),
        from_all=tuple(own_from),
        sender=sender_list[0] if sender_list else None,
        to=tuple(_addresses(msg, "to", ctx)),
        cc=tuple(_addresses(msg, "cc", ctx)),
        reply_to=tuple(_addresses(msg, "reply-to", ctx)),
        date=_date(_raw_get(msg, "date"), ctx),
        in_reply_to=_in_reply_to(_id_header(msg, "in-reply-to")),
        references=tuple(_ids(_id_header(msg, "references") or "")),
        text=text,
        html=html_text,
        html_only=html_only,
        attachments=tuple(ctx.attachments),
        forwarded_messages=tuple(ctx.forwarded),
        large_attachment_links=tuple(find_large_links(text, html_text or "")),
        unit_signature=find_unit_signature(text),
        auto_reply=auto,
        auto_reply_reason=auto_reason,
        bounce=bounce,
        bounce_reason=bounce_reason,
        defects=tuple(dict.fromkeys(ctx.defects)),
        headers=headers,
        size=len(raw),
        received=tuple(received_hops(skeleton)),
        mailing_list=mailing_list,
    )


_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_OBS_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)


def _first_line_is_junk(data: bytes) -> bool:
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    return bool(first) and not _HEADER_LINE.match(first) and not first.startswith(b"From ")


def repair_header_block(data: bytes) -> tuple[bytes, int]:
    """Make a damaged header block readable: obsolete `Name  :` spacing is closed up and
    lines that are neither headers nor continuations are set aside (the raw bytes keep them)."""
    head, sep, body = data.partition(b"\r\n\r\n") if b"\r\n\r\n" in data[:65536] else data.partition(b"\n\n")
    kept, dropped = [], 0
    for line in head.splitlines(keepends=True):
        fixed = _OBS_HEADER.sub(rb"\1:", line)
        if _HEADER_LINE.match(fixed) or (kept and line[:1] in (b" ", b"\t")) or fixed.startswith(b"From "):
            kept.append(fixed)
        else:
            dropped += 1
    if not kept:
        return data, 0
    return b"".join(kept) + sep + body, dropped


class _Context:
    def __init__(self, raw: bytes, blobs: dict[str, tuple[int, int]]):
        self.raw = raw
        self.blobs = blobs
        self.defects: list[str] = []
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.forwarded: list[ForwardedMessage | None] = []
        self.fwd_texts: list[list[str]] = []
        self.names: set[str] = set()
        self.hint: str | None = None  # the message's declared charset: a clue for raw 8-bit headers


# --- headers ---------------------------------------------------------------------


def _raw_all(msg: Message, name: str) -> list[str]:
    low = name.lower()
    return [v for k, v in msg.raw_items() if k.lower() == low]


def _raw_get(msg: Message, name: str) -> str | None:
    values = _raw_all(msg, name)
    return values[0] if values else None


def _header(msg: Message, name: str, ctx: _Context) -> str:
    value = _raw_get(msg, name)
    if value is None:
        return ""
    text, defects = decode_header_value(value, name.title(), hint=ctx.hint)
    ctx.defects.extend(defects)
    return text


def _first_charset(msg: Message) -> str | None:
    for part in msg.walk():
        if not part.is_multipart():
            label = _charset_param(part)
            if label:
                return label
    return None


def _decoded_headers(msg: Message, ctx: _Context) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in msg.raw_items():
        text, _ = decode_header_value(value, key, hint=ctx.hint)
        out.append((str(key), text))
    return tuple(out)


def _addresses(msg: Message, name: str, ctx: _Context) -> list[Address]:
    values = _raw_all(msg, name)
    if not values:
        return []
    out: list[Address] = []
    try:
        pairs = utils.getaddresses(values)
    except Exception:  # the stdlib's address parser has raised on hostile input before
        ctx.defects.append(f"address-unparseable: {name.title()} kept as text")
        pairs = [("", v) for v in values]
    for raw_name, raw_addr in pairs:
        display, defects = decode_header_value(raw_name, f"{name.title()} name", hint=ctx.hint)
        ctx.defects.extend(defects)
        addr, defects = decode_header_value(raw_addr, f"{name.title()} address")
        ctx.defects.extend(defects)
        addr = addr.strip().strip("<>").strip()
        if not addr and not display:
            continue
        if not addr and "@" in display:
            addr, display = display, ""
        out.append(Address(display.strip().strip('"').strip(), addr))
    return out


_MSGID = re.compile(r"<[^<>\s]+>")


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    # Message-IDs are ASCII; stray 8-bit bytes are replaced rather than guessed.
    if header_bytes(value) is not None:
        value = value.encode("ascii", "surrogateescape").decode("ascii", "replace")
    text = re.sub(r"\s+", "", value)
    found = _MSGID.search(text)
    if found:
        return found.group(0)
    return text or None


def _id_header(msg: Message, name: str) -> str | None:
    """In-Reply-To/References as written; some generators RFC 2047-encode a long one."""
    value = _raw_get(msg, name)
    if value and "=?" in value:
        value = decode_header_value(value, name)[0]
    return value


def _in_reply_to(value: str | None) -> str | None:
    if value is None:
        return None
    ids = _ids(value)
    if ids:
        return ids[0]
    text = value.strip()
    return text or None


def _ids(value: str) -> list[str]:
    return _MSGID.findall(re.sub(r"\s+", "", value) if "<" not in value else value)


def _date(value: str | None, ctx: _Context) -> datetime | None:
    if not value:
        return None
    try:
        parsed = utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        ctx.defects.append(f"date-invalid: {value.strip()[:60]!r} could not be read")
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None and re.search(r"-0000\s*(?:\([^)]*\))?\s*$", value):
        parsed = parsed.replace(tzinfo=timezone.utc)  # RFC 5322: -0000 is UTC, zone unknown
    if parsed.tzinfo is None:
        ctx.defects.append("date-no-timezone: read as China time (+08:00)")
        parsed = parsed.replace(tzinfo=CHINA)
    return parsed


# --- MIME walk ---------------------------------------------------------------------


def _walk(part: Message, ctx: _Context, forwarded: bool, depth: int) -> None:
    for defect in getattr(part, "defects", []) or []:
        ctx.defects.append(f"mime: {type(defect).__name__}")
    if depth > MAX_DEPTH:
        ctx.defects.append("mime-too-deep: nested parts beyond depth 8 were not opened")
        return
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global"):
        _forwarded(part, ctx, depth)
        return
    if part.is_multipart():
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            _walk(sub, ctx, forwarded, depth + 1)
        return
    data = _payload(part, ctx)
    if _is_body(part, ctype):
        text, defects = decode_bytes(data, _charset_param(part), ctype)
        ctx.defects.extend(defects)
        if forwarded:  # the forwarded message's own text, kept with it
            ctx.fwd_texts[-1].append(text if ctype == "text/plain" else html_to_text(text))
        else:
            (ctx.html if ctype == "text/html" else ctx.plain).append(text)
        return
    att = _attachment(part, data, ctype, forwarded, ctx)
    if ctype in ("application/ms-tnef", "application/vnd.ms-tnef") or att.filename.lower() == "winmail.dat":
        inner = _tnef_files(att, forwarded, ctx)
        if inner:
            ctx.attachments.extend(inner)
            return
    ctx.attachments.append(att)


def _tnef_files(att: Attachment, forwarded: bool, ctx: _Context) -> list[Attachment]:
    """Outlook's winmail.dat opened into the files it carries (tnefparse)."""
    import logging

    import tnefparse

    logging.getLogger("tnefparse").setLevel(logging.ERROR)
    try:
        tnef = tnefparse.TNEF(att.data, do_checksum=False)
    except Exception as exc:  # not really TNEF, or damaged: keep winmail.dat as it is
        ctx.defects.append(f"tnef-unreadable: {att.filename or 'winmail.dat'} kept as is ({type(exc).__name__})")
        return []
    ctx.names.discard(att.safe_name)
    out = []
    for inner in tnef.attachments:
        name = inner.long_filename() or inner.name or ""
        if isinstance(name, bytes):
            name, found = decode_bytes(name, None, "TNEF file name")
            ctx.defects.extend(found)
        data = inner.data if isinstance(inner.data, bytes) else bytes(inner.data or b"")
        content_type = sniff_type(data, "application/octet-stream")
        name = _no_nul(name)
        safe = unique_name(safe_name(name, len(ctx.attachments) + len(out) + 1, content_type),
                           ctx.names)
        ctx.names.add(safe)
        out.append(Attachment(filename=name, safe_name=safe, size=len(data),
                              sha256=hashlib.sha256(data).hexdigest(), content_type=content_type,
                              declared_type="application/ms-tnef", disposition="attachment",
                              in_forwarded_message=forwarded, data=data))
    if out:
        ctx.defects.append(f"tnef-expanded: winmail.dat opened into {len(out)} file(s)")
    return out


def _forwarded(part: Message, ctx: _Context, depth: int) -> None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
    else:  # encoded message/rfc822 (base64 or quoted-printable): parse its bytes ourselves
        inner = message_from_bytes(_payload(part, ctx), policy=policy.compat32)
    inner_ctx = _Context(ctx.raw, ctx.blobs)
    from_list = _addresses(inner, "from", inner_ctx)
    index = len(ctx.forwarded)
    ctx.forwarded.append(None)  # keeps MIME order when forwards nest
    ctx.fwd_texts.append([])
    _walk(inner, ctx, forwarded=True, depth=depth + 1)
    texts = ctx.fwd_texts.pop()
    ctx.forwarded[index] = ForwardedMessage(
        subject=_header(inner, "subject", inner_ctx),
        from_=from_list[0] if from_list else None,
        message_id=_message_id(_raw_get(inner, "message-id")),
        date=(d.isoformat() if (d := _date(_raw_get(inner, "date"), inner_ctx)) else None),
        text=_clean_text("\n\n".join(texts)),
    )
    ctx.defects.extend(inner_ctx.defects)


def _is_body(part: Message, ctype: str) -> bool:
    if ctype not in ("text/plain", "text/html"):
        return False
    disposition = (part.get("content-disposition") or "")
    disposition = str(disposition).split(";")[0].strip().lower()
    return disposition != "attachment" and not _filename(part, None)


def _charset_param(part: Message) -> str | None:
    for key, value in _params(part, "content-type"):
        if key == "charset":
            return value if isinstance(value, str) else None
    return None


def _payload(part: Message, ctx: _Context) -> bytes:
    raw = part.get_payload()
    if isinstance(raw, str):
        token = raw.strip()
        if token in ctx.blobs:
            start, end = ctx.blobs[token]
            return _b64(ctx.raw, start, end, ctx)
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # cpython #94606 and friends
        ctx.defects.append(f"payload-undecodable: {type(exc).__name__}; raw bytes kept")
        data = None
    if data is None:
        data = raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""
    return data


def _b64(raw: bytes, start: int, end: int, ctx: _Context) -> bytes:
    """raw[start:end] decoded from base64 as binascii does it (line breaks and stray
    characters skipped), leniently when it is broken (with a defect noted)."""
    block = memoryview(raw)[start:end]
    pad = raw.find(b"=", start, end)
    try:  # the usual case: one pass, line breaks skipped by the decoder, no copies
        if pad < 0 or not raw[pad:end].strip(b"= \t\r\n"):
            # padding only at the end: pybase64 (SIMD, ~6x faster) gives binascii's bytes and
            # errors; with "=" inside, binascii stops at the first one and pybase64 does not
            return pybase64.b64decode(block, validate=False)
        return binascii.a2b_base64(block)
    except (binascii.Error, ValueError):
        pass
    data = bytes(block).translate(None, b"\r\n \t")
    try:
        return base64.b64decode(data + b"=" * (-len(data.rstrip(b"=")) % 4))
    except binascii.Error:
        ctx.defects.append("base64-invalid: decoded leniently")
    try:
        return binascii.a2b_base64(data, strict_mode=False)
    except binascii.Error:  # one character after the last whole group (a body cut off): dropped
        alpha = data.translate(None, _NOT_BASE64)
        alpha = alpha[: len(alpha) - 1] if len(alpha) % 4 == 1 else alpha
        return binascii.a2b_base64(alpha + b"=" * (-len(alpha) % 4))


_NOT_BASE64 = bytes(sorted(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")))


# --- attachments -------------------------------------------------------------------


def _params(part: Message, header: str) -> list[tuple[str, object]]:
    """Parameters of a header read from its raw value, RFC 2231 continuations joined."""
    raw = _raw_get(part, header)
    if not raw:
        return []
    try:
        pairs = []
        for item in _parseparam(";" + raw.split(";", 1)[1] if ";" in raw else ""):
            if "=" in item:
                key, value = item.split("=", 1)
                pairs.append((key.strip().lower(), value.strip()))
        decoded = utils.decode_params([("", "")] + pairs)[1:]
    except Exception:
        return []
    out = []
    for key, value in decoded:
        if isinstance(value, tuple):
            out.append((key, value))
        else:
            out.append((key, utils.unquote(value)))
    return out


def _filename(part: Message, ctx: _Context | None) -> str:
    for header, key in (("content-disposition", "filename"), ("content-type", "name")):
        for name, value in _params(part, header):
            if name != key:
                continue
            if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded text)
                charset, _lang, text = value
                text = utils.unquote(text) if isinstance(text, str) else text
                data = text.encode("latin-1", "surrogateescape") if isinstance(text, str) else text
                decoded, defects = decode_bytes(data, charset or None, "file name")
            else:
                decoded, defects = decode_header_value(utils.unquote(value), "file name")
            if ctx is not None:
                ctx.defects.extend(defects)
            if decoded.strip():
                return _no_nul(decoded.strip())
    return ""


def _no_nul(name: str) -> str:
    """A file name as sent, but with NUL as U+FFFD (as Dovecot does in headers): no text
    column of PostgreSQL can hold a NUL, and no file system or mail client shows one."""
    return name.strip("\x00 ").replace("\x00", "\ufffd")


def _attachment(part: Message, data: bytes, declared: str, forwarded: bool, ctx: _Context) -> Attachment:
    filename = _filename(part, ctx)
    content_type = sniff_type(data, declared)
    disposition = str(part.get("content-disposition") or "").split(";")[0].strip().lower()
    cid = _raw_get(part, "content-id")
    if disposition not in ("attachment", "inline"):
        disposition = "inline" if cid and not filename else "attachment"
    safe = unique_name(safe_name(filename, len(ctx.attachments) + 1, content_type), ctx.names)
    ctx.names.add(safe)
    return Attachment(
        filename=filename,
        safe_name=safe,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        declared_type=declared,
        disposition=disposition,
        in_forwarded_message=forwarded,
        content_id=cid.strip() if cid else None,
        data=data,
    )


_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)
MAX_NAME_BYTES = 180


def safe_name(filename: str, index: int, content_type: str) -> str:
    """A file name safe on any disk: no path, no control or reserved characters, bounded length."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip(" .\u3000")
    if _RESERVED.match(name):
        name = "_" + name
    if not name or set(name) <= {"_", "."}:
        return f"attachment-{index}{extension_for(content_type)}"
    stem, ext = os.path.splitext(name)
    if len(ext.encode()) > 16:
        stem, ext = name, ""
    while len((stem + ext).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + ext


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name (2).ext` … when a sibling already has it."""
    if name not in taken:
        return name
    stem, ext = os.path.splitext(name)
    n = 2
    while f"{stem} ({n}){ext}" in taken:
        n += 1
    return f"{stem} ({n}){ext}"


# --- body text ---------------------------------------------------------------------


def _body_text(ctx: _Context) -> tuple[str, str | None, bool]:
    html_text = "\n".join(ctx.html) if ctx.html else None
    if ctx.plain:
        text = "\n\n".join(t for t in ctx.plain)
        return _clean_text(text), html_text, False
    if html_text is not None:
        return _clean_text(html_to_text(html_text)), html_text, True
    return "", None, False


def _clean_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def html_to_text(html: str) -> str:
    """Readable text from HTML (inscriptis keeps table rows and line breaks)."""
    from inscriptis import get_text

    try:
        return get_text(html)
    except Exception:  # a broken document: fall back to stripping tags
        return htmllib.unescape(re.sub(r"<[^>]+>", " ", html))


# --- 超大附件 links ------------------------------------------------------------------

_LARGE_TRIGGER = re.compile(r"从(?P<provider>[^\n]{1,12}?)邮箱发来的(?:超大|云)附件")
_LARGE_ITEM = re.compile(
    r"(?m)^[ \t\u3000]*(?P<name>[^\n]+?)\s*[(（]\s*(?P<size>[\d.]+\s*[KMGT]?B?)\s*[,，]\s*"
    r"(?P<expires>\d{4}年\d{1,2}月\d{1,2}日\s*\d{1,2}:\d{2})\s*到期\s*[)）]")
_LARGE_URL = re.compile(
    r"https?://(?:wx\.mail\.qq\.com/ftn/download\?|mail\.qq\.com/cgi-bin/ftnExs_download\?|"
    r"exmail\.qq\.com/cgi-bin/ftnExs_download\?|[\w.]*mail\.163\.com/large-attachment-download/|"
    r"[\w.]*mail\.126\.com/large-attachment-download/|(?:qiye|mail)\.aliyun\.com/alimail/|"
    r"(?:space|[\w.]*)\.dingtalk\.com/)[^\s\"'<>）)]+")


def find_large_links(text: str, html: str) -> list[LargeAttachmentLink]:
    """超大附件 (large attachments sent as download links) named in the body."""
    # One rendering only (the plain text, else the HTML's), or every file is counted twice.
    haystack = text
    trigger = _LARGE_TRIGGER.search(haystack)
    if not trigger and html and "邮箱发来的" in html:
        haystack = html_to_text(html)
        trigger = _LARGE_TRIGGER.search(haystack)
    if not trigger:
        return []
    provider = trigger.group("provider").strip() + "邮箱"
    region = haystack[trigger.end():]
    items = list(_LARGE_ITEM.finditer(region))
    urls = list(dict.fromkeys(htmllib.unescape(u) for u in _LARGE_URL.findall(text + "\n" + html)))
    out = []
    for i, item in enumerate(items):
        name = re.sub(r"^\s*(?:[•·\-*]\s*)?", "", item.group("name")).strip()
        out.append(LargeAttachmentLink(provider, name, item.group("size").replace(" ", ""),
                                       re.sub(r"\s+", " ", item.group("expires")),
                                       urls[i] if i < len(urls) else None))
    for url in urls[len(items):]:
        out.append(LargeAttachmentLink(provider, "", None, None, url))
    return out


# --- unit signature ----------------------------------------------------------------

_QUOTE_START = re.compile(
    r"^[ \t\u00a0\u3000>]*(?:-{2,}\s*(?:原始邮件|原邮件|Original|转发|回复的原邮件)|_{10,}|"
    r"(?:发件人|From)\s*[:：]|在.{4,80}写道\s*[:：]|.{0,80}于\d{4}年.{0,40}写道\s*[:：])")
_REPORTER = re.compile(r"^[ \t\u3000]*(?:报送单位|填报单位|来稿单位|供稿单位|投稿单位)[ \t\u3000]*[:：][ \t\u3000]*"
                       r"(?P<unit>[^\s，,。；;（(]{2,40})")
_BRACKET = re.compile(r"【(?P<unit>[^【】\n]{2,30})】")
_UNIT_SUFFIX = re.compile(r"^[ \t\u3000]*(?P<unit>[\u4e00-\u9fff（）()]{2,30}"
                          r"(?:科协|科学技术协会|学会|协会|研究会|科普基地|农技协|委员会|中心|大学|学院|公司))[ \t\u3000]*$")


def find_unit_signature(text: str) -> str | None:
    """The unit named in the signature of the new text: 报送单位：…, else 【…】, else a
    name line ending in 科协/学会/… among the last lines."""
    lines = []
    for line in text.splitlines():
        if _QUOTE_START.match(line):
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    for line in lines:
        if m := _REPORTER.match(line):
            return m.group("unit")
    tail = [line for line in lines if line.strip()][-6:]
    for line in reversed(tail):
        found = _BRACKET.findall(line)
        if found:
            return found[-1].strip()
    for line in reversed(tail):
        if m := _UNIT_SUFFIX.match(line):
            return m.group("unit")
    return None


# --- auto-replies and bounces ------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:[^\s:：]{1,10}\s+)?(?:自动回复|自动答复|自動回覆|自動回復|假期自动回复|Automatic reply|Auto[- ]?Reply|"
    r"Autoreply|Out of Office|Out of the Office|Abwesenheitsnotiz)\s*[:：]?", re.I)
_AUTO_BODY = re.compile(r"^\s*(?:这是来自QQ邮箱的(?:假期)?自动回复邮件|您发给我的信件已经收到|"
                        r"This is an automatic reply|此邮件为自动回复|本邮件为自动回复)")
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:系统退信|退信|投递失败|发送失败|未送达|邮件无法送达|Undeliver|Delivery Status Notification|"
    r"Mail Delivery Fail|Mail delivery failed|failure notice|Returned mail|Delivery Failure|"
    r"Undelivered Mail)", re.I)


def _auto_reply(msg: Message, subject: str, text: str, froms: list[Address], ctx) -> tuple[bool, str | None]:
    auto = (_raw_get(msg, "auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return True, f"Auto-Submitted: {auto}"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply"):
        if _raw_get(msg, name) is not None:
            return True, f"{name} header"
    precedence = (_raw_get(msg, "precedence") or "").strip().lower()
    if precedence in ("auto_reply", "bulk", "junk", "list"):
        return True, f"Precedence: {precedence}"
    if _AUTO_SUBJECT.match(subject):
        return True, "auto-reply subject"
    if _AUTO_BODY.match(text):
        return True, "auto-reply text"
    return False, None


def _bounce(msg: Message, subject: str, froms: list[Address], ctx) -> tuple[bool, str | None]:
    ctype = msg.get_content_type()
    report = str(msg.get_param("report-type") or "").lower() if ctype == "multipart/report" else ""
    if ctype == "multipart/report" and report in ("delivery-status", ""):
        return True, "multipart/report delivery-status"
    if _raw_get(msg, "x-failed-recipients") is not None:
        return True, "X-Failed-Recipients header"
    local = froms[0].address.split("@")[0].lower() if froms else ""
    if local in ("mailer-daemon", "postmaster") and _BOUNCE_SUBJECT.match(subject):
        return True, f"from {local}"
    if _BOUNCE_SUBJECT.match(subject) and (local in ("mailer-daemon", "postmaster") or
                                          (_raw_get(msg, "return-path") or "").strip() == "<>"):
        return True, "bounce subject"
    if _BOUNCE_SUBJECT.match(subject) and re.match(r"^\s*(?:系统退信|退信)", subject):
        return True, "bounce subject"
    return False, None


_FINGERPRINT_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to",
                        "content-type", "content-transfer-encoding")


def _hash_text(digest, raw: bytes, start: int, chunk: int = 1 << 20) -> None:
    """Hash raw[start:] without carriage returns or surrounding whitespace, 1 MiB at a time
    (a 40 MB message is not copied whole)."""
    end = len(raw)
    while end > start and raw[end - 1] in b" \t\r\n":
        end -= 1
    while start < end and raw[start] in b" \t\r\n":
        start += 1
    for i in range(start, end, chunk):
        digest.update(raw[i:min(i + chunk, end)].translate(None, b"\r"))


def read_key(raw: bytes) -> tuple[str | None, str, str]:
    """(Message-ID, dedup key, content fingerprint) from the bytes: `read_id` and
    `fingerprint` together."""
    message_id, key = read_id(raw)
    return message_id, key, fingerprint(raw)


def _head(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    return raw[: end if 0 <= end < 1 << 20 else 1 << 20]


def _header_message(head: bytes) -> Message | None:
    try:
        return message_from_bytes(head + b"\n\n", policy=policy.compat32)
    except Exception:  # header junk: the content identifies it
        return None


# A header block of plain header lines (a name of printable ASCII and a colon, or a folded
# continuation; CRLF or LF; no From_ line, no lone CR, none of the other characters
# str.splitlines breaks at, which the stdlib's feed parser splits lines with): the stdlib
# reads it line for line, so its first Message-ID line is found by a regex exactly as the
# parser finds it.
_LINE = rb"[^\r\n\x0b\x0c\x1c\x1d\x1e]*\r?\n"
_PLAIN_HEAD = re.compile(rb"[\041-\071\073-\176]+:" + _LINE + rb"(?:(?:[\041-\071\073-\176]+:|[\t ])" + _LINE + rb")*")
_ID_LINE = re.compile(rb"^message-id:([^\r\n]*(?:\r?\n[\t ][^\r\n]*)*)", re.I | re.M)


def read_id(raw: bytes, sha256: str | None = None) -> tuple[str | None, str]:
    """(Message-ID, dedup key) from the header block, without reading the body. The key is
    the Message-ID, or for a message without one its bytes' sha256 (`sha256` when the
    caller has it). A plain header block is read with one regex; any other goes through
    the stdlib parser (the same answer: tests/unit/test_read_id.py)."""
    head = _head(raw)
    if _PLAIN_HEAD.fullmatch(head + b"\n") and not head.startswith(b"From "):
        found = _ID_LINE.search(head)
        message_id = _message_id(found.group(1).decode("ascii", "surrogateescape")) if found else None
    else:
        message_id = _parsed_id(head)
    return message_id, message_id or f"sha256:{sha256 or hashlib.sha256(raw).hexdigest()}"


def _parsed_id(head: bytes) -> str | None:
    """The first Message-ID header as the stdlib's parser reads the header block."""
    return _id_of(_header_message(head))


def _id_of(msg: Message | None) -> str | None:
    try:
        return _message_id(_raw_get(msg, "message-id")) if msg is not None else None
    except Exception:  # header junk
        return None


def fingerprint(raw: bytes) -> str:
    """The content fingerprint: a hash of what a re-delivery cannot change (the addressing
    headers and the body, line ends normalised), ignoring what it does (Received,
    Delivered-To …). A copy of one message in two mailboxes matches; two different messages
    that happen to share a Message-ID do not. It reads the whole message, so the pipeline
    asks for it only where it decides something: a Message-ID seen before, with other bytes.
    """
    head = _head(raw)
    msg = _header_message(head)
    message_id = _id_of(msg)
    digest = hashlib.sha256()
    try:
        if message_id is not None:
            for name in _FINGERPRINT_HEADERS:
                for value in _raw_all(msg, name):
                    digest.update(name.encode() + b":" + re.sub(r"\s+", " ", value).strip()
                                  .encode("utf-8", "surrogateescape") + b"\n")
    except Exception:  # header junk: the content hash identifies it
        message_id = None
    if message_id is None:  # no identity in the headers: the whole text is the identity
        digest = hashlib.sha256()
        _hash_text(digest, raw, 0)
    else:
        digest.update(b"\n")
        _hash_text(digest, raw, len(head))
    return digest.hexdigest()


def received_hops(raw: bytes) -> list[dict]:
    """The Received trail (who relayed the message, when, how long each hop took).

    mail-parser is right for this job: its Received grammar covers the odd relays that
    Chinese providers run. It only sees the header block, so it never decodes text (its
    text decoding garbles GBK; ours does that).
    """
    import logging

    import mailparser

    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[: end if end >= 0 else min(len(raw), 1 << 16)]
    if b"received:" not in head.lower():
        return []
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    try:
        hops = mailparser.parse_from_bytes(head + b"\r\n\r\n").received
    except Exception:  # a trail it cannot read is not worth losing the message over
        return []
    keys = ("hop", "from", "by", "with", "date_utc", "delay")
    return [{k: hop.get(k) for k in keys} for hop in hops or [] if isinstance(hop, dict)]
