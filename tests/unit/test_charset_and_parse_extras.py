"""Charset decoding as a table of cases, the large-attachment fast path and the Received trail."""

from __future__ import annotations

import base64
import hashlib
import os
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml

from mailbot.read.charset import decode_bytes, decode_header_value
from mailbot.read.parse import hollow, parse

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "charset.yaml").read_text("utf-8"))


def case_bytes(case) -> bytes:
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    text, codec = case["encode"]
    return text.encode(codec)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decode_bytes(case):
    text, defects = decode_bytes(case_bytes(case), case["label"])
    assert text == case["text"]
    assert [d.split(":")[0] for d in defects] == case["defects"]


def test_encoded_words_split_mid_character_and_raw_8bit_mixed():
    b = "临沂科协".encode("gbk")
    split = f"=?GBK?B?{base64.b64encode(b[:3]).decode()}?= =?GBK?B?{base64.b64encode(b[3:]).decode()}?="
    assert decode_header_value(split)[0] == "临沂科协"
    raw = "回执（已显示） - =?GBK?Q?=C4=E3=BA=C3?=".encode("gbk").decode("ascii", "surrogateescape")
    assert decode_header_value(raw)[0] == "回执（已显示） - 你好"


def big_message(size: int) -> tuple[bytes, bytes]:
    payload = os.urandom(size)
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@example.test", "b@example.test", "视频稿件"
    m.set_content("见附件")
    m.add_attachment(payload, maintype="video", subtype="mp4", filename="活动视频.mp4")
    return m.as_bytes(), payload


def test_large_base64_bodies_are_cut_out_and_decoded_identically():
    raw, payload = big_message(3 * 1024 * 1024)
    skeleton, blobs = hollow(raw, "ABC")
    assert len(blobs) == 1 and len(skeleton) < 4096
    mail = parse(raw)
    att = mail.attachments[0]
    assert att.size == len(payload) and att.sha256 == hashlib.sha256(payload).hexdigest()
    stdlib = [p.get_payload(decode=True) for p in message_from_bytes(raw, policy=policy.default).walk()
              if p.get_filename()]
    assert stdlib == [att.data] and att.filename == "活动视频.mp4"


def test_small_or_non_base64_bodies_are_left_to_the_stdlib():
    raw, _ = big_message(10_000)
    assert hollow(raw, "X") == (raw, {})
    quoted = raw.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: base64\r\nX: y")
    assert parse(quoted).attachments[0].size == 10_000


def test_received_trail_from_origin_to_us():
    raw = (b"Received: from smtpbg328.qq.com ([14.17.43.160]) by mx.linyi.example with ESMTP id 1;"
           b" Wed, 24 Dec 2014 04:09:36 +0800\r\n"
           b"Received: from [10.0.0.2] by smtpbg328.qq.com with ESMTP id 2; Wed, 24 Dec 2014 04:09:30 +0800\r\n"
           b"From: a@qq.com\r\nSubject: x\r\n\r\nbody\r\n")
    hops = parse(raw).to_json()["received"]
    # hop 1 is the first relay (the bottom header), as mail-parser numbers them
    assert [(h["hop"], h["by"]) for h in hops] == [(1, "smtpbg328.qq.com"), (2, "mx.linyi.example")]
    assert hops[1]["from"].startswith("smtpbg328.qq.com") and hops[1]["delay"] == 6


def test_outlook_winmail_dat_is_opened_into_its_files():
    raw = (Path(__file__).parents[1] / "corpora/mailcore2/unittest/data/summary/input/1808-winmail-dat.eml").read_bytes()
    mail = parse(raw)
    assert [(a.filename, a.content_type, a.declared_type) for a in mail.attachments] == [
        ("GIR - LINUX.doc", "application/msword", "application/ms-tnef")]
    assert mail.attachments[0].data.startswith(b"\xd0\xcf\x11\xe0")  # the real Word file, not the TNEF wrapper
    assert any(d.startswith("tnef-expanded") for d in mail.defects)


def test_encoded_in_reply_to_is_read():
    raw = (b"From: a@example.test\r\nSubject: x\r\nMessage-ID: <m@x>\r\n"
           b"In-Reply-To: =?utf-8?q?=3Cmailbot=2Ereview=2EKP-2026-0001=2Eabc?=\r\n =?utf-8?q?=40ly=2Eexample=2Etest=3E?=\r\n"
           b"\r\nbody\r\n")
    assert parse(raw).in_reply_to == "<mailbot.review.KP-2026-0001.abc@ly.example.test>"
