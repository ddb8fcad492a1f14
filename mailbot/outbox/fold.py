"""A fast path for folding one header the way the stdlib's policy SMTP folds it.

The stdlib folds a non-ASCII header (a Chinese Subject) as RFC 2047 encoded words by
encoding a chunk, and while it is too long, encoding it again one character shorter: about
1.5 ms a Subject, most of the cost of a receipt. `fold_words` finds the same chunk from
running totals of each character's encoded length, then encodes it once: the same bytes,
for the values of the shape it accepts (plain ASCII words, then one run of text without
whitespace); anything else returns None and the caller uses the stdlib.
tests/unit/test_outbox_fold.py compares the two on a table of cases and on random values.
"""

from __future__ import annotations

import re
from email import _encoded_words as _ew

MAX_LINE = 78  # policy SMTP's max_line_length
_CHROME = len("utf-8") + 7  # =?utf-8?b?…?=
_HEAD = re.compile(r"(?:[A-Za-z0-9\[\]\-_.:/#()]+ )*")  # words the stdlib leaves as they are
_Q_SAFE = frozenset(b"-!*+/ ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _unsafe(text: str) -> bool:
    return (any(c.isspace() or ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 or ord(c) == 127 for c in text)
            or "=?" in text or "?=" in text)


def fold_words(name: str, value: str) -> bytes | None:
    """`name: value` folded as policy SMTP folds it, or None when the value is not of the
    shape this handles: ASCII words each followed by one space, then a run with at least
    one non-ASCII character and no whitespace."""
    head = _HEAD.match(value)
    cut = head.end()
    rest = value[cut:]
    if not rest or rest.isascii() or _unsafe(rest) or len(name) + 2 + cut > 60:
        return None
    lines = [f"{name}: {value[:cut]}"]
    # running totals per character: UTF-8 bytes, and their length in q encoding
    nbytes, qlen = [0], [0]
    for ch in rest:
        data = ch.encode("utf-8")
        nbytes.append(nbytes[-1] + len(data))
        qlen.append(qlen[-1] + sum(1 if b in _Q_SAFE else 3 for b in data))
    start = 0
    while start < len(rest):
        remaining = MAX_LINE - len(lines[-1])
        text_space = remaining - _CHROME
        if text_space <= 0:
            lines.append(" ")
            continue
        k = min(text_space, len(rest) - start)
        while k > 0 and _encoded_length(nbytes[start + k] - nbytes[start], qlen[start + k] - qlen[start]) > remaining:
            k -= 1
        lines[-1] += _ew.encode(rest[start:start + k], charset="utf-8")
        start += k
        if start < len(rest):
            lines.append(" ")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _encoded_length(nbytes: int, qlen: int) -> int:
    """The length of the stdlib's encoded word for text of `nbytes` UTF-8 bytes whose q
    encoding is `qlen` long (it takes q unless b is shorter by 5 or more)."""
    groups, left = divmod(nbytes, 3)
    blen = groups * 4 + (4 if left else 0)
    return _CHROME + (qlen if qlen - blen < 5 else blen)
