"""outbox.build's direct assembly (letters without files) against the stdlib's EmailMessage:
the same bytes for every case in tests/cases/outbox_build.yaml, and for every golden letter."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from mailbot import outbox

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "outbox_build.yaml").read_text("utf-8"))
BASE = outbox.Outgoing(
    kind="receipt", mailbox="skxkpb", from_name="某市科协科普部", from_address="skxkpb@ly.shandong.cn",
    to_name="", to_address="ysxkx@163.com", subject="[KP-2026-0042] 回执：已收到《全国科普日活动信息》",
    text="沂水县科协：\n\n您好！已收到您报送的稿件。\n", html="<p>沂水县科协：</p>\n<p>您好！</p>\n",
    message_id="<mailbot.receipt.KP-2026-0042.0123456789abcdef@ly.shandong.cn>",
    date=datetime(2026, 9, 20, 9, 30, tzinfo=timezone(timedelta(hours=8))),
    in_reply_to="<abc.123@163.com>", references=("<abc.123@163.com>",))


def outgoing(case: dict) -> outbox.Outgoing:
    values = {k: v for k, v in case.items() if k != "name"}
    if "references" in values:
        values["references"] = tuple(values["references"])
    if "extra_headers" in values:
        values["extra_headers"] = tuple(tuple(h) for h in values["extra_headers"])
    return replace(BASE, **values)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_direct_build_gives_the_stdlib_bytes(case):
    out = outgoing(case)
    assert outbox._build_direct(out) == outbox._build_generic(out)


def test_build_takes_the_direct_way_only_without_files():
    plain = outgoing({})
    with_file = replace(plain, attachments=(("a.txt", b"abc", "text/plain"),))
    assert outbox.build(plain) == outbox._build_direct(plain)
    assert outbox.build(with_file) == outbox._build_generic(with_file)
    assert b'filename="a.txt"' in outbox.build(with_file)


FILES = [
    ("one Chinese-named PDF", (("关于全国科普日活动的总结（修改稿）.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 3, "application/pdf"),), ()),
    ("an empty file and a text file", (("空.txt", b"", "text/plain"), ("名单.csv", "序号,单位\n1,沂水县科协\n".encode(), "text/csv")), ()),
    ("a file bigger than one encoding slice", (("video.mp4", bytes(range(256)) * 700 + b"x", "video/mp4"),), ()),
    ("no type given", (("data.bin", b"\x00\x01\x02", ""),), ()),
    ("an inline chart and a workbook", (("周报.xlsx", b"PK\x03\x04" + b"\x00" * 300, "application/vnd.ms-excel"),),
     (("chart@ly.example", b"\x89PNG\r\n\x1a\n" + b"\x01" * 500, "image/png"),)),
]


@pytest.mark.parametrize("name,attachments,related", FILES, ids=[f[0] for f in FILES])
def test_letters_with_files_give_the_stdlib_bytes(name, attachments, related):
    out = replace(outgoing({}), attachments=attachments, related=related)
    assert outbox.build(out) == outbox._build_generic(out)
