"""Routing, filing and receipts end to end over the real servers: the unit's mail goes in
over SMTP, the receipt comes back to the unit's IMAP INBOX, files land on disk."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from imapclient import imap_utf7
from sqlmodel import Session, select

from mailbot.models import aware
from mailbot.runtime import daemon
from mailbot.store import Event, InboundMessage, OutboxMessage, Submission, SubmissionFile

pytestmark = pytest.mark.integration
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40 + b"\xff\xd9"
DOCX_NAME = "沂水县全国科普日活动总结（李喆）.docx"


@functools.cache
def docx_bytes() -> bytes:
    """A real .docx, made once (a zip stamps the time: two saves can differ)."""
    import io

    from docx import Document

    doc = Document()
    doc.add_paragraph("沂水县全国科普日活动顺利举办。")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def submission(sender="unit1@example.test", to="skxkpb@example.test", subject="【沂水县科协】全国科普日活动信息",
               extra_headers=(), files=True) -> bytes:
    """A 稿件 as a Foxmail/Outlook user in a county office sends it: GBK-named .docx and a photo."""
    m = EmailMessage()
    m["From"] = f"沂水县科协 <{sender}>"
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="163.example")
    for name, value in extra_headers:
        m[name] = value
    m.set_content("各位老师好：附件是我县全国科普日活动信息，请审核。\n\n沂水县科协")
    if files:
        m.add_attachment(docx_bytes(), maintype="application", subtype="octet-stream", filename="x.docx")
        m.add_attachment(JPEG, maintype="image", subtype="jpeg", filename="现场照片.jpg")
    raw = m.as_bytes()
    if files:  # the file name as Chinese Outlook and Foxmail write it: RFC 2047, GBK, inside quotes
        gbk = f'"=?GBK?B?{base64.b64encode(DOCX_NAME.encode("gbk")).decode()}?="'.encode()
        raw = raw.replace(b'filename="x.docx"', b"filename=" + gbk)
    return raw


def send(servers, raw: bytes, sender: str, rcpts: list[str]) -> None:
    asyncio.run(aiosmtplib.send(raw, sender=sender, recipients=rcpts, hostname=servers.host,
                                port=servers.smtp_port, start_tls=False))


def inbox(servers, user: str) -> list:
    return [message_from_bytes(raw, policy=policy.default) for raw in servers.fetch_all(user)]


def table(engine, model):
    with Session(engine) as s:
        return s.exec(select(model)).all()


def test_submission_is_filed_and_the_unit_gets_a_receipt(servers, make_settings):
    raw = submission()
    send(servers, raw, "unit1@example.test", ["skxkpb@example.test"])
    rt = daemon.Runtime.build(make_settings(  # 科普部 reviews its 稿件: the receipt says so
        servers, reviewers=[{"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test"]}],
        review={"stages": {"kepu": [{"name": "初审", "reviewers": ["zhang"]}]}}))
    assert daemon.run_once(rt) == []

    [sub] = table(rt.engine, Submission)
    [row] = table(rt.engine, InboundMessage)  # the year the robot received it, on the one clock
    year = aware(row.received_at).astimezone(rt.settings.tz).year
    assert (sub.tracking, sub.unit, sub.department, sub.title) == (
        f"KP-{year}-0001", "沂水县科协", "kepu", "【沂水县科协】全国科普日活动信息")
    assert "unit1@example.test 登记在 沂水县科协 名下" in sub.route_reason and "科普部" in sub.route_reason

    files = {f.filename: f for f in table(rt.engine, SubmissionFile)}
    assert set(files) == {DOCX_NAME, "现场照片.jpg"}
    assert sub.folder == f"{year}/科普部/沂水县科协/{sub.tracking}"
    on_disk = (rt.raws.root / files[DOCX_NAME].path).read_bytes()
    assert on_disk == docx_bytes() and (rt.raws.root / files["现场照片.jpg"].path).read_bytes() == JPEG
    assert files[DOCX_NAME].sha256 == hashlib.sha256(on_disk).hexdigest()

    [receipt] = inbox(servers, "unit1")
    assert receipt["Subject"] == f"[{sub.tracking}] 回执：已收到《【沂水县科协】全国科普日活动信息》"
    assert receipt["From"].addresses[0].addr_spec == "skxkpb@example.test"
    original_id = message_from_bytes(raw, policy=policy.default)["Message-ID"]
    assert receipt["In-Reply-To"] == original_id and receipt["Auto-Submitted"] == "auto-replied"
    text = receipt.get_body(("plain",)).get_content()
    assert sub.tracking in text and DOCX_NAME in text and "现场照片.jpg" in text and "科普部进行初审" in text

    with servers.imap("skxkpb") as imap:  # filed in the mailbox too, under the unit's folder
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
        assert imap.select_folder("稿件/沂水县科协")[b"EXISTS"] == 1
        imap.folder_encode = False  # the name on the wire is modified UTF-7 (RFC 3501 5.1.3)
        assert imap_utf7.encode("稿件/沂水县科协") in [f[2] for f in imap.list_folders()]


def test_one_message_to_two_mailboxes_is_one_submission_one_receipt(servers, make_settings):
    send(servers, submission(to="skxkpb@example.test, skxdxb@example.test"), "unit1@example.test",
         ["skxkpb@example.test", "skxdxb@example.test"])
    rt = daemon.Runtime.build(make_settings(servers))
    daemon.run_once(rt)
    assert len(table(rt.engine, Submission)) == 1
    assert len(inbox(servers, "unit1")) == 1


def test_receipt_waits_for_the_smtp_server_and_is_sent_exactly_once(servers, make_settings):
    servers.append("skxkpb", submission())
    servers.smtp.stop()
    rt = daemon.Runtime.build(make_settings(servers, outbox={"retry_initial": 60, "retry_max": 120}))
    assert daemon.run_once(rt) == []
    [row] = table(rt.engine, OutboxMessage)
    assert row.status == "pending" and "无法连接 SMTP 服务器" in row.last_error and row.attempts == 1
    assert rt.sent.retry == 1

    servers.smtp.start()  # back, on the same port
    later = rt.clock() + timedelta(seconds=61)  # the retry is due
    rt.send_due(later)
    rt.send_due(later)  # nothing left: a second drain must not send it again
    [row] = table(rt.engine, OutboxMessage)
    assert row.status == "sent" and row.attempts == 2
    assert len(inbox(servers, "unit1")) == 1


def test_auto_replies_and_thanks_get_no_answer_and_a_flood_is_capped(servers, make_settings):
    servers.append("skxkpb", submission())
    rt = daemon.Runtime.build(make_settings(servers, outbox={"daily_cap_per_sender": 3}))
    daemon.run_once(rt)
    [receipt] = inbox(servers, "unit1")
    tag = receipt["Subject"].split("]")[0] + "]"
    ooo = (f"From: unit1@example.test\r\nTo: skxkpb@example.test\r\nSubject: 自动回复: {tag} 回执\r\n"
           f"Message-ID: <ooo-1@163.example>\r\nIn-Reply-To: {receipt['Message-ID']}\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n您好，我正在休假。").encode()
    thanks = submission(subject=f"回复：{tag} 回执", files=False).replace(
        "附件是我县全国科普日活动信息，请审核。".encode(), "收到，谢谢".encode())
    qq_vacation = (f"From: unit2@example.test\r\nTo: skxkpb@example.test\r\nSubject: Re: 通知\r\n"
                   "Message-ID: <qq-1@qq.example>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                   "<div>这是来自QQ邮箱的假期自动回复邮件。</div>").encode()
    for raw in (ooo, thanks, qq_vacation):
        servers.append("skxkpb", raw)
    daemon.run_once(rt)
    assert len(table(rt.engine, OutboxMessage)) == 1  # no answer to any of them
    kinds = sorted(r.kind for r in table(rt.engine, InboundMessage))
    assert kinds == ["auto_reply", "auto_reply", "reply", "submission"]

    # another robot that answers everything without marking its mail: bounded by the daily cap
    for i in range(4):
        robot = (f"From: robot@example.test\r\nTo: skxkpb@example.test\r\nSubject: 您的来信已收到 {i}\r\n"
                 f"Message-ID: <robot-{i}@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                 "您的来信已收到，我们会尽快处理。").encode()
        servers.append("skxkpb", robot)
    daemon.run_once(rt)
    to_robot = [r for r in table(rt.engine, OutboxMessage) if r.to_address == "robot@example.test"]
    assert len(to_robot) == 3
    assert sum(e.kind == "outbox-cap" for e in table(rt.engine, Event)) == 1


def test_bounce_of_our_receipt_marks_it_failed(servers, make_settings):
    servers.append("skxkpb", submission())
    rt = daemon.Runtime.build(make_settings(servers))
    daemon.run_once(rt)
    [row] = table(rt.engine, OutboxMessage)
    dsn = ("From: MAILER-DAEMON@example.test\r\nTo: skxkpb@example.test\r\nSubject: 系统退信\r\n"
           "Message-ID: <dsn-1@example.test>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n邮件无法投递：用户不存在。\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n"
           "Final-Recipient: rfc822; unit1@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {row.message_id}\r\n"
           "Subject: receipt\r\n--b--\r\n").encode()
    servers.append("skxkpb", dsn)
    daemon.run_once(rt)
    [row] = table(rt.engine, OutboxMessage)
    assert row.status == "failed" and "退信" in row.last_error
    assert len(table(rt.engine, OutboxMessage)) == 1  # and the bounce itself is not answered


def test_revision_and_oversized_mail(servers, make_settings):
    servers.append("skxkpb", submission())
    rt = daemon.Runtime.build(make_settings(servers, filing={"max_message_bytes": 2048}))
    daemon.run_once(rt)
    [sub] = table(rt.engine, Submission)
    first = inbox(servers, "unit1")[0].get_body(("plain",)).get_content()
    assert sub.oversized and "这封邮件较大" in first
    servers.append("skxkpb", submission(subject=f"回复：[{sub.tracking}] 修改稿"))
    daemon.run_once(rt)
    [sub] = table(rt.engine, Submission)
    assert sub.revision == 2
    assert len([f for f in table(rt.engine, SubmissionFile) if f.revision == 2]) == 2
    second = [m for m in inbox(servers, "unit1") if "第2版" in m["Subject"]]
    assert len(second) == 1 and sub.tracking in second[0]["Subject"]
