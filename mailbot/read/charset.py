"""Charset layer: turns the bytes Chinese mail clients actually send into text.

Every GB2312/GBK label is decoded as GB18030 (the WHATWG rule), unknown labels go
through an alias table and then sniffing, and nothing is ever decoded with
errors='ignore'. Each function reports what it had to repair, as defect strings.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

# Labels Python does not know, or knows with a narrower mapping than senders mean.
ALIASES: dict[str, str] = {
    **{k: "gb18030" for k in (
        "gb2312", "gb_2312", "gb_2312-80", "gb2312-80", "csgb2312", "euc-cn", "x-euc-cn", "euccn",
        "chinese", "gbk", "x-gbk", "cp936", "windows-936", "ms936", "936", "gb18030", "hz-gb-2312-gbk",
        "iso-ir-58", "csiso58gb231280",
    )},
    "big5": "big5hkscs", "x-big5": "big5hkscs", "big5-hkscs": "big5hkscs", "cn-big5": "big5hkscs",
    "windows-874": "cp874", "tis-620": "cp874", "iso-8859-11": "cp874",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949", "x-windows-949": "cp949",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-unicode20utf8": "utf-8", "utf-8": "utf-8",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "ascii", "ascii": "ascii",
    "shift_jis": "cp932", "x-sjis": "cp932", "sjis": "cp932", "iso-2022-jp": "iso2022_jp_ext",
    "euc-jp": "euc_jis_2004",
}
# Labels that carry no information: sniff the bytes instead.
SNIFF = {"", "unknown", "x-unknown", "unknown-8bit", "unicode", "x-user-defined", "default", "none", "8bit"}
# Fallback order when the label fails or is missing.
FALLBACKS = ("utf-8", "gb18030", "big5hkscs")

_LABEL_JUNK = re.compile(r'^(?:charset\s*=\s*)+', re.I)
_CJK = re.compile(r'[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]')


def clean_label(label: str | None) -> str:
    """Normalise a charset label: lowercase, no quotes, no repeated 'charset=' prefix."""
    if not label:
        return ""
    text = str(label).strip().strip('"\'').strip()
    text = _LABEL_JUNK.sub("", text).strip().strip('"\'').strip().lower()
    return text


def codec_for(label: str | None) -> str | None:
    """Map a declared label to a Python codec name, or None when it says nothing usable."""
    name = clean_label(label)
    if name in SNIFF:
        return None
    if name in ALIASES:
        return ALIASES[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_NARROW_GB = {"gb2312", "gb_2312", "gb_2312-80", "gb2312-80", "csgb2312", "euc-cn", "x-euc-cn", "euccn"}


def _python_knows(label: str) -> bool:
    try:
        codecs.lookup(label)
        return True
    except LookupError:
        return False


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_bytes(data: bytes, label: str | None, where: str = "text",
                 hint: str | None = None) -> tuple[str, list[str]]:
    """Decode bytes declared as `label`; return the text and the repairs made.

    Order: declared label (aliased) strictly; UTF-8 strictly (also preferred when a
    GB label hides valid UTF-8 with CJK); gb18030; big5; charset-normalizer; finally
    the label with errors='replace', recorded as a defect.
    """
    defects: list[str] = []
    raw_label = clean_label(label)
    codec = codec_for(label)
    if raw_label in ALIASES and not _python_knows(raw_label):
        defects.append(f"charset-alias: {where} label {raw_label!r} read as {ALIASES[raw_label]}")
    if raw_label and codec is None and raw_label not in SNIFF:
        defects.append(f"charset-unknown: {where} label {raw_label!r} is unknown; content sniffed")
    if data.isascii():
        return data.decode("ascii"), defects
    if codec:
        if codec == "gb18030" or codec == "ascii" or codec == "cp1252":
            # A GB or Latin label over bytes that are valid UTF-8 with CJK: the label lies.
            as_utf8 = _strict(data, "utf-8")
            if as_utf8 is not None and _CJK.search(as_utf8):
                defects.append(f"charset-mislabelled: {where} labelled {raw_label!r} but is UTF-8")
                return as_utf8, defects
        text = _strict(data, codec)
        if text is not None:
            if raw_label in _NARROW_GB and _strict(data, "gb2312") is None:
                defects.append(f"charset-widened: {where} labelled {raw_label!r} holds GBK-only "
                               "characters; read as gb18030")
            return text, defects
        defects.append(f"charset-invalid: {where} is not valid {raw_label!r}; content sniffed")
    hinted = codec_for(hint) if hint else None
    candidates = list(dict.fromkeys(c for c in ("utf-8", hinted, *FALLBACKS) if c))
    for fallback in candidates:
        if fallback == codec:
            continue
        text = _strict(data, fallback)
        if text is not None:
            if codec or raw_label not in SNIFF:
                defects.append(f"charset-sniffed: {where} decoded as {fallback}")
            return text, defects
    # A few bad bytes (a line cut mid-character) in otherwise valid CJK text: keep that
    # reading, with the bad bytes visible as U+FFFD, rather than a Latin-1 "best guess".
    best, bad = _fewest_errors(data, [c for c in (codec, hinted) if c])
    if best and bad <= max(2, len(data) // 200):
        defects.append(f"charset-replaced: {where} decoded as {best}; {bad} invalid byte sequence(s) "
                       "shown as U+FFFD")
        return data.decode(best, errors="replace"), defects
    guess = _normalizer_guess(data)
    if guess:
        text = _strict(data, guess)
        if text is not None:
            defects.append(f"charset-sniffed: {where} decoded as {guess} (best guess)")
            return text, defects
    fallback = codec or "utf-8"
    defects.append(f"charset-replaced: {where} has bytes invalid in every charset tried; "
                   f"they are shown as U+FFFD ({fallback})")
    return data.decode(fallback, errors="replace"), defects


def _fewest_errors(data: bytes, codecs_: list[str]) -> tuple[str | None, int]:
    best, fewest = None, len(data) + 1
    for name in dict.fromkeys(codecs_):
        try:
            bad = data.decode(name, errors="replace").count("\ufffd")
        except LookupError:
            continue
        if bad < fewest:
            best, fewest = name, bad
    return best, fewest


def _normalizer_guess(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data[:65536]).best()
    return best.encoding if best else None


# --- headers -------------------------------------------------------------------

_ENCODED_WORD = re.compile(r'=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=')


def header_bytes(value: str) -> bytes | None:
    """Recover the raw bytes of a header value read with surrogateescape, if it had 8-bit data."""
    try:
        value.encode("ascii")
        return None
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # Already-decoded non-ASCII text (policy returned str with real characters).
        return value.encode("utf-8", "surrogateescape")


def decode_header_value(value: object, where: str = "header", hint: str | None = None) -> tuple[str, list[str]]:
    """Decode a header value: raw 8-bit bytes, RFC 2047 words (even split mid-character
    or inside quotes), unknown charset labels. Returns (text, defects)."""
    if value is None:
        return "", []
    defects: list[str] = []
    text = value if isinstance(value, str) else str(value)
    raw = header_bytes(text)
    if raw is not None:
        text, found = decode_bytes(raw, None, where, hint=hint)
        defects.append(f"raw-8bit-header: {where} had unencoded 8-bit bytes")
        defects.extend(found)
    if "=?" not in text:
        return _no_nul(_unfold(text), where, defects), defects
    text, found = _decode_words(_unfold(text), where)
    defects.extend(found)
    return _no_nul(text.strip(), where, defects), defects


def _no_nul(text: str, where: str, defects: list[str]) -> str:
    """NUL (sent encoded, as =00 or in base64) becomes U+FFFD, as Dovecot does with a raw one:
    no text column of PostgreSQL can hold it, and no reader shows it."""
    if "\x00" not in text:
        return text
    defects.append(f"nul-in-header: {where} held a NUL character, shown as U+FFFD")
    return text.replace("\x00", "\ufffd")


def _word_bytes(enc: str, payload: str) -> bytes:
    if enc in "bB":
        payload = payload.strip().rstrip("=")
        payload += "=" * (-len(payload) % 4)
        return base64.b64decode(payload.encode("ascii", "ignore") or b"", validate=False)
    data = payload.replace("_", " ").encode("ascii", "surrogateescape")
    return quopri.decodestring(data, header=True)


def _decode_words(text: str, where: str) -> tuple[str, list[str]]:
    """RFC 2047 decoding by hand: merges adjacent words of one charset before decoding,
    so a multibyte character split across two words survives (the stdlib policy loses it),
    and keeps non-ASCII text between words as it is."""
    defects: list[str] = []
    pieces: list[tuple[str, object]] = []  # ("text", str) or (label, bytes)
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        between = text[pos:m.start()]
        label = clean_label(m.group(1).split("*")[0])  # RFC 2231 language suffix
        try:
            data = _word_bytes(m.group(2), m.group(3))
        except (ValueError, binascii.Error):
            defects.append(f"encoded-word-broken: {where}: {m.group(0)[:40]!r} kept as written")
            pieces.append(("text", between + m.group(0)))
            pos = m.end()
            continue
        if between and not (between.isspace() and pieces and pieces[-1][0] != "text"):
            pieces.append(("text", between))
        if pieces and pieces[-1][0] == label:
            pieces[-1] = (label, pieces[-1][1] + data)
        else:
            pieces.append((label, data))
        pos = m.end()
    pieces.append(("text", text[pos:]))
    out: list[str] = []
    for label, chunk in pieces:
        if label == "text":
            out.append(chunk)
        else:
            piece, found = decode_bytes(chunk, label, where)
            out.append(piece)
            defects.extend(found)
    return "".join(out), defects


def _unfold(text: str) -> str:
    return re.sub(r'\r?\n[ \t]+', ' ', text).replace("\r", "").replace("\n", " ").strip()
