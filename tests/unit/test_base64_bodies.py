"""parse._b64, the decoder of large base64 bodies: binascii's bytes for every body
(tests/cases/base64_bodies.yaml, then random bodies against binascii itself), whichever of
its two decoders (pybase64 for bodies padded only at the end, binascii for the others) runs."""

from __future__ import annotations

import base64
import binascii
import random
from pathlib import Path

import pytest
import yaml

from mailbot.read import parse

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "base64_bodies.yaml").read_text("utf-8"))


def decode(body: bytes, lead: bytes = b"") -> tuple[bytes, list[str]]:
    raw = lead + body  # the body sits inside a message: decoded from its range
    ctx = parse._Context(raw, {})
    return parse._b64(raw, len(lead), len(raw), ctx), ctx.defects


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_base64_body_decodes_as_the_table_says(case):
    data, defects = decode(case["encoded"].encode("latin-1"), lead=b"Content-Transfer-Encoding: base64\r\n\r\n")
    assert data == case["decoded"].encode("latin-1")
    assert any(d.startswith("base64-invalid") for d in defects) == case["defect"]


ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
JUNK = b"\r\n \t*!-_.\x00\xff"


def test_random_bodies_decode_to_binascii_bytes():
    rnd = random.Random(20261207)  # fixed: the same bodies every run
    for _ in range(20000):
        body = bytes(rnd.choice(ALPHABET) if rnd.random() < 0.85 else rnd.choice(JUNK)
                     for _ in range(rnd.randint(0, 40)))
        body += bytes(rnd.choice(b"=\r\n ") for _ in range(rnd.randint(0, 4)))
        if rnd.random() < 0.2:  # padding inside, where binascii stops
            body = body[: len(body) // 2] + b"==" + body[len(body) // 2:]
        try:
            expected = binascii.a2b_base64(body)
        except binascii.Error:
            continue  # broken bodies: the lenient path, covered by the table
        assert decode(body)[0] == expected, body


def test_a_large_attachment_comes_back_byte_for_byte():
    data = random.Random(7).randbytes(3 * 1024 * 1024)  # far above the size where bodies are hollowed out
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    raw = (b"From: unit1@example.test\r\nTo: skxkpb@example.test\r\nSubject: photo\r\nMessage-ID: <p@x>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: image/jpeg; name=a.jpg\r\n"
           b"Content-Disposition: attachment; filename=a.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + body + b"--b--\r\n")
    mail = parse.parse(raw)
    assert [a.data for a in mail.attachments] == [data]
    assert not mail.defects


def test_a_large_body_cut_off_one_character_after_a_whole_group_keeps_the_message():
    """Before 2026-12-07 the lenient decoder itself raised on this, and the message was
    quarantined whole; now its text and its file are kept, with the defect noted."""
    data = random.Random(8).randbytes(120_000)
    body = base64.encodebytes(data).replace(b"\n", b"\r\n") + b"Q\r\n"  # a stray character after the last group
    raw = (b"From: unit1@example.test\r\nMessage-ID: <cut@x>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"hi\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + body + b"--b--\r\n")
    mail = parse.parse(raw)
    assert mail.text.strip() == "hi"
    assert [a.data for a in mail.attachments] == [data]
    assert "base64-invalid: decoded leniently" in mail.defects
