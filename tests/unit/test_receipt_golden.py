"""Outgoing mail pinned byte for byte: the receipt for KP-2026-0042 with a fixed Date and
Message-ID. Regenerate on purpose with MAILBOT_REGENERATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

from mailbot.config import Settings
from mailbot.filing import plan_receipt
from mailbot.models import mail_from_json
from mailbot.outbox import build
from mailbot.store import Submission

GOLDEN = Path(__file__).parents[1] / "golden" / "receipt-KP-2026-0042.eml"
CHINA = timezone(timedelta(hours=8))


def settings() -> Settings:
    return Settings.model_validate({
        "organisation": "临沂市科协", "mail_domain": "ly.shandong.cn",
        "mailboxes": [{"name": "skxkpb", "host": "imap.ly.shandong.cn", "user": "skxkpb@ly.shandong.cn",
                       "password_env": "X"}],
        "departments": [{"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb",
                         "sender_name": "临沂市科协科普部"},
                        {"key": "diaoxuan", "name": "调宣部", "prefix": "DX"}],
    })


def receipt() -> bytes:
    sub = Submission(tracking="KP-2026-0042", department="kepu", unit="沂水县科协", title="全国科普日活动信息",
                     revision=1, sender="ysxkx@163.com", mailbox="skxkpb", route_reason="", inbound_id=1,
                     folder="", oversized=False)
    mail = mail_from_json({"from": {"name": "张喆", "address": "ysxkx@163.com"}, "message_id": "<abc.123@163.com>",
                           "references": [], "large_attachment_links": []})
    files = [{"name": "关于全国科普日活动的总结.docx", "size": 24_576}, {"name": "现场照片.jpg", "size": 1_258_291}]
    out = plan_receipt(settings(), sub, "skxkpb", 1_300_000, mail, files,
                       datetime(2026, 9, 20, 9, 30, tzinfo=CHINA), token="0123456789abcdef")
    return build(out)


def test_receipt_matches_the_golden_file():
    data = receipt()
    if os.environ.get("MAILBOT_REGENERATE_GOLDEN"):
        GOLDEN.write_bytes(data)
    assert data == GOLDEN.read_bytes()


def test_receipt_headers_and_text_read_right():
    msg = message_from_bytes(receipt(), policy=policy.default)
    assert msg["Subject"] == "[KP-2026-0042] 回执：已收到《全国科普日活动信息》"
    assert msg["From"].addresses[0].display_name == "临沂市科协科普部"
    assert msg["Message-ID"] == "<mailbot.receipt.KP-2026-0042.0123456789abcdef@ly.shandong.cn>"
    assert msg["In-Reply-To"] == "<abc.123@163.com>" and msg["References"] == "<abc.123@163.com>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    raw_headers = receipt().split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is ASCII: RFC 2047 UTF-8
    assert "=?utf-8?" in raw_headers and "gb2312" not in raw_headers.lower()
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "KP-2026-0042" in part and "沂水县科协" in part and "科普部" in part
        assert "关于全国科普日活动的总结.docx（24.0 KB）" in part and "现场照片.jpg（1.2 MB）" in part
        assert "2026年09月20日 09:30" in part
    assert not re.search(r"[A-Za-z_]+\(|Traceback|None", text)  # nothing internal shows
