"""parse.read_id: the dedup key's Message-ID, read from a plain header block by one regex,
from any other by the stdlib's parser; both ways give the parser's answer
(tests/cases/read_id.yaml, every fixture and corpus mail, then random header blocks)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from mailbot.read import parse

TESTS = Path(__file__).parents[1]
CASES = yaml.safe_load((TESTS / "cases" / "read_id.yaml").read_text("utf-8"))


def stdlib(raw: bytes) -> str | None:
    return parse._parsed_id(parse._head(raw))


def is_plain(raw: bytes) -> bool:
    head = parse._head(raw)
    return bool(parse._PLAIN_HEAD.fullmatch(head + b"\n")) and not head.startswith(b"From ")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_message_id_is_read_as_the_table_says(case):
    head = case["head"].encode("latin-1")
    eol = b"\r\n" if b"\r\n" in head else b"\n"
    raw = head + eol + b"body" + eol
    message_id, key = parse.read_id(raw, sha256="f" * 64)
    assert message_id == case["id"]
    assert key == (case["id"] or "sha256:" + "f" * 64)
    assert is_plain(raw) == case["plain"]
    assert message_id == stdlib(raw)


def test_every_fixture_and_corpus_mail_gets_the_parsers_message_id():
    files = [p for d in ("fixtures", "corpora") for p in (TESTS / d).rglob("*") if p.is_file()]
    plain = 0
    for path in files:
        raw = path.read_bytes()
        assert parse.read_id(raw)[0] == stdlib(raw), path
        plain += is_plain(raw)
    assert len(files) > 150 and plain > len(files) // 3  # both ways are exercised


LINES = [b"From: a@b", b"To: c@d", b"Subject: hi", b"Message-ID: <m1@x>", b"message-id: <m2@x>",
         b"Message-Id:", b" <m3@x>", b"\t<m4@x> trailing", b"MESSAGE-ID: m5@x", b"X-Message-ID: <no@x>",
         b"Message-ID : <m6@x>", b"not a header", b": empty name", b"From someone", b"Subject: \xe4\xb8\xad",
         b"Message-ID: <m7\xff@x>", b"Date: Wed, 9 Dec 2026", b"Received: from a\x0cby b", b"Odd: a\rb",
         b"Message-ID: <m8@x>\x1c", b"", b"  ", b"Subject: a\x0bb"]


def test_random_header_blocks_get_the_parsers_message_id():
    rnd = random.Random(20261207)  # fixed: the same blocks every run
    plain = 0
    for _ in range(5000):
        lines = [rnd.choice(LINES) for _ in range(rnd.randint(1, 8))]
        raw = rnd.choice([b"\r\n", b"\n"]).join(lines) + b"\r\n\r\nbody\r\n"
        assert parse.read_id(raw)[0] == stdlib(raw), raw
        plain += is_plain(raw)
    assert plain > 500
