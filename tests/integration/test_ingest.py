"""Ingestion end to end over a real Dovecot (and the SMTP relay into it): every message
stored once, parsed or quarantined, progress kept, nothing deleted on the server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from sqlmodel import Session, select

from mailbot import pipeline
from mailbot.ingest import FLAG_STORED
from mailbot.read import parse
from mailbot.runtime import daemon
from mailbot.store import Event, InboundMessage, MailboxState, MessageCopy

pytestmark = pytest.mark.integration
STAY = {"move_to_unit_folder": False}  # tests of ingestion alone: filed mail stays in the INBOX


def mail(subject: str, body: str = "正文", sender: str = "unit1@example.test", msgid: bool = True,
         attachment: bytes | None = None, filename: str = "稿件.docx") -> bytes:
    m = EmailMessage()
    m["From"] = f"沂水县科协 <{sender}>"
    m["To"] = "skxkpb@example.test"
    m["Subject"] = subject
    if msgid:
        m["Message-ID"] = make_msgid(domain="unit.example")
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=filename)
    return m.as_bytes()


def gbk_mail(n: int) -> bytes:
    subject = base64.b64encode(f"李喆的稿件{n}".encode("gbk")).decode()
    return (f"From: unit2@example.test\r\nTo: skxxhb@example.test\r\nSubject: =?gb2312?B?{subject}?=\r\n"
            f"Message-ID: <gbk-{n}@unit.example>\r\nContent-Type: text/plain; charset=gb2312\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + "王堃报送，镕".encode("gbk")


def rows(engine, model):
    with Session(engine) as s:
        return s.exec(select(model)).all()


def test_run_once_stores_parses_and_accounts_for_every_message(servers, make_settings):
    sent = {}
    for box in ("skxkpb", "skxxhb", "skxdxb"):
        for i in range(4):
            raw = gbk_mail(hash((box, i)) % 10**6) if i == 3 else mail(f"{box} 稿件 {i}", attachment=b"x" * (i * 1000))
            servers.append(box, raw)
            sent[(box, i)] = raw
    rt = daemon.Runtime.build(make_settings(servers))
    assert daemon.run_once(rt) == []
    assert (rt.totals.fetched, rt.totals.stored, rt.totals.parsed) == (12, 12, 12)

    inbound = rows(rt.engine, InboundMessage)
    assert len(inbound) == 12 and {r.status for r in inbound} == {"parsed"}
    for row in inbound:  # raw bytes on disk, content-addressed, byte-exact with the server's copy
        data = rt.raws.read(row.raw_path)
        assert hashlib.sha256(data).hexdigest() == row.sha256 and row.raw_path.endswith(row.sha256 + ".eml")
    subjects = {r.subject for r in inbound}
    assert any(s.startswith("李喆的稿件") for s in subjects)
    copies = rows(rt.engine, MessageCopy)
    assert len(copies) == 12 and {c.server_action for c in copies} == {"done"}
    states = {s.mailbox: s for s in rows(rt.engine, MailboxState)}
    assert {b: s.last_uid for b, s in states.items()} == {"skxkpb": 4, "skxxhb": 4, "skxdxb": 4}
    with servers.imap("skxkpb") as imap:  # filed by unit after commit: flagged, not deleted, not read
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
        flags = {}
        for folder in ("稿件/沂水县科协", "稿件/临沂市农学会"):
            imap.select_folder(folder)
            flags.update({(folder, k): v for k, v in imap.get_flags(imap.search("ALL")).items()})
        assert len(flags) == 4 and all(FLAG_STORED in f and b"\\Seen" not in f for f in flags.values())

    rt.totals = pipeline.Counts()
    assert daemon.run_once(rt) == []
    assert (rt.totals.fetched, rt.totals.stored) == (0, 0)
    assert len(rows(rt.engine, InboundMessage)) == 12


def test_message_delivered_twice_or_to_two_mailboxes_is_stored_once(servers, make_settings):
    raw = mail("同一篇稿件发给两个邮箱")
    asyncio.run(aiosmtplib.send(raw, sender="unit1@example.test",
                                recipients=["skxkpb@example.test", "skxdxb@example.test"],
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))
    servers.append("skxkpb", raw)  # re-delivered copy in the same INBOX
    no_id = mail("没有 Message-ID 的稿件", msgid=False)
    servers.append("skxxhb", no_id)
    servers.append("skxxhb", no_id)
    rt = daemon.Runtime.build(make_settings(servers, filing=STAY))
    daemon.run_once(rt)
    inbound = rows(rt.engine, InboundMessage)
    assert len(inbound) == 2
    keys = {r.key for r in inbound}
    held = servers.fetch_all("skxxhb")  # the server's bytes (APPEND made the line ends CRLF)
    assert held[0] == held[1]
    assert f"sha256:{hashlib.sha256(held[0]).hexdigest()}" in keys
    copies = rows(rt.engine, MessageCopy)
    assert len(copies) == 5 and sum(c.duplicate for c in copies) == 3
    assert rt.totals.duplicates == 3
    assert len(rows(rt.engine, Event)) >= 3


def test_a_message_id_used_again_for_other_content_keeps_both_and_a_redelivery_stays_one(servers, make_settings):
    """Dedup by Message-ID, checked by the content fingerprint: a second delivery of the same
    message (other Received lines, other bytes) is a copy; another message that reuses the
    Message-ID (a broken client, a copied template) is kept beside the first. The robot
    computes a fingerprint only for such a clash, from the bytes in hand or the stored file,
    and decides the same either way."""
    def with_id(body: str) -> bytes:
        m = EmailMessage()
        m["From"] = "沂水县科协 <unit1@example.test>"
        m["To"] = "skxkpb@example.test"
        m["Subject"] = "同一个 Message-ID"
        m["Message-ID"] = "<reused@unit.example>"
        m.set_content(body)
        return m.as_bytes()

    def redelivered(raw: bytes, hop: str) -> bytes:
        return f"Received: from {hop} by mx.example.test; Wed, 9 Dec 2026 10:00:00 +0800\r\n".encode() + raw

    first, second = with_id("第一篇稿件"), with_id("第二篇，内容不同")
    for raw in (first, second, redelivered(first, "relay1")):  # one batch: the clash found among new rows
        servers.append("skxkpb", raw)
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), filing=STAY))
    daemon.run_once(rt)
    inbound = sorted(rows(rt.engine, InboundMessage), key=lambda r: r.id)
    assert [r.message_id for r in inbound] == ["<reused@unit.example>"] * 2
    assert inbound[0].key == "<reused@unit.example>" and inbound[1].key.startswith("<reused@unit.example>#")
    assert rt.totals.duplicates == 1
    assert sum(e.kind == "message-id-collision" for e in rows(rt.engine, Event)) == 1
    assert all(row.status == "parsed" for row in inbound)
    # the second message's fingerprint, computed for the clash, is kept with its row
    assert inbound[1].fingerprint == parse.fingerprint(rt.raws.read(inbound[1].raw_path))
    assert inbound[1].key == f"<reused@unit.example>#{inbound[1].fingerprint[:16]}"

    # later clashes are decided from the stored files (no row need carry a fingerprint)
    with Session(rt.engine) as s:
        for row in s.exec(select(InboundMessage)).all():
            row.fingerprint = ""
            s.add(row)
        s.commit()
    servers.append("skxkpb", redelivered(first, "relay2"))   # a copy of the first message
    servers.append("skxkpb", redelivered(second, "relay2"))  # a copy of the second message
    servers.append("skxkpb", with_id("第三篇，又一个"))          # a third message with the same id
    rt.totals = pipeline.Counts()
    daemon.run_once(rt)
    assert (rt.totals.stored, rt.totals.duplicates) == (1, 2)
    inbound = rows(rt.engine, InboundMessage)
    assert len(inbound) == 3 and len({r.key for r in inbound}) == 3
    assert len(rows(rt.engine, MessageCopy)) == 6


def test_uidvalidity_change_rescans_and_dedup_keeps_it_exact(servers, make_settings):
    for i in range(3):
        servers.append("skxkpb", mail(f"稿件 {i}"))
    settings = make_settings(servers, boxes=("skxkpb",), filing=STAY)
    rt = daemon.Runtime.build(settings)
    daemon.run_once(rt)
    servers.dovecot.doveadm("mailbox", "update", "-u", "skxkpb", "--uid-validity", "777", "INBOX")
    servers.append("skxkpb", mail("新稿件"))
    rt.totals = pipeline.Counts()
    daemon.run_once(rt)
    assert (rt.totals.fetched, rt.totals.stored, rt.totals.duplicates) == (4, 1, 3)
    assert len(rows(rt.engine, InboundMessage)) == 4
    state = rows(rt.engine, MailboxState)[0]
    assert state.uidvalidity == 777 and state.last_uid == 4
    assert any(e.kind == "uidvalidity-changed" for e in rows(rt.engine, Event))


def test_unreadable_message_is_quarantined_and_the_batch_goes_on(servers, make_settings):
    servers.append("skxdxb", mail("第一封"))
    servers.append("skxdxb", b"this line is no header\r\nnor is this one\r\n\r\nbody\r\n")
    servers.append("skxdxb", mail("第三封"))
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxdxb",), filing=STAY))
    daemon.run_once(rt)
    by_status = {}
    for row in rows(rt.engine, InboundMessage):
        by_status.setdefault(row.status, []).append(row)
    assert len(by_status["parsed"]) == 2 and len(by_status["quarantined"]) == 1
    bad = by_status["quarantined"][0]
    assert "不是一封可读的邮件" in bad.reason
    assert rt.raws.read(bad.raw_path).startswith(b"this line is no header")
    with servers.imap("skxdxb") as imap:  # moved, not deleted
        assert imap.select_folder("INBOX")[b"EXISTS"] == 2
        imap.select_folder("mailbot/quarantine")
        kept = imap.fetch(imap.search("ALL"), ["BODY.PEEK[]"])
        assert [v[b"BODY[]"] for v in kept.values()][0].startswith(b"this line is no header")


def test_parser_crash_quarantines_one_message_only(servers, make_settings, monkeypatch):
    for subject in ("好的一封", "会让解析器崩溃的一封", "另一封好的"):
        servers.append("skxkpb", mail(subject, body="CRASH-ME" if "崩溃" in subject else "ok"))
    real = pipeline.parser.parse

    def fragile(data: bytes, **kw):  # fault injection in the pure core, not a mock of a server
        if b"CRASH-ME" in data:
            raise RuntimeError("simulated parser bug")
        return real(data, **kw)

    monkeypatch.setattr(pipeline.parser, "parse", fragile)
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), parse_workers=0))
    daemon.run_once(rt)
    statuses = sorted(r.status for r in rows(rt.engine, InboundMessage))
    assert statuses == ["parsed", "parsed", "quarantined"]
    bad = [r for r in rows(rt.engine, InboundMessage) if r.status == "quarantined"][0]
    assert "simulated parser bug" in bad.reason

    monkeypatch.setattr(pipeline.parser, "parse", real)  # the fix ships: replay the stored copy
    row, outcome = pipeline.replay(rt.engine, rt.raws, rt.raws.read(bad.raw_path), "skxkpb")
    assert outcome == "retried+parsed" and row.status == "parsed" and row.subject == "会让解析器崩溃的一封"
    assert len(rows(rt.engine, InboundMessage)) == 3


def test_large_attachment_travels_in_its_own_batch(servers, make_settings):
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB
    servers.append("skxkpb", mail("小稿件"))
    servers.append("skxkpb", mail("大附件稿件", attachment=big, filename="活动视频.mp4"))
    servers.append("skxkpb", mail("又一篇小稿件"))
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), batch_bytes=2 * 1024 * 1024))
    daemon.run_once(rt)
    inbound = {r.subject: r for r in rows(rt.engine, InboundMessage)}
    assert set(inbound) == {"小稿件", "大附件稿件", "又一篇小稿件"}
    import json

    att = json.loads(inbound["大附件稿件"].parsed_json)["attachments"][0]
    assert att["size"] == len(big) and att["sha256"] == hashlib.sha256(big).hexdigest()


def test_mark_processed_off_leaves_flags_alone(servers, make_settings):
    servers.append("skxkpb", mail("不加标记"))
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), mark_processed=False))
    daemon.run_once(rt)
    assert [r.status for r in rows(rt.engine, InboundMessage)] == ["parsed"]
    with servers.imap("skxkpb") as imap:
        imap.select_folder("INBOX")
        assert all(FLAG_STORED not in f for f in imap.get_flags(imap.search("ALL")).values())


def test_parse_that_exceeds_the_timeout_is_stopped_and_quarantined(servers, make_settings):
    servers.append("skxkpb", mail("解析很慢的一封", attachment=bytes(range(256)) * 40000))
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), parse_workers=1, parse_timeout=0.001))
    assert daemon.run_once(rt) == []
    [row] = rows(rt.engine, InboundMessage)
    assert row.status == "quarantined" and "解析超过" in row.reason
    with servers.imap("skxkpb") as imap:  # set aside on the server too, not lost
        assert imap.select_folder("mailbot/quarantine")[b"EXISTS"] == 1


def test_unwritable_storage_is_reported_and_nothing_is_lost(servers, make_settings):
    servers.append("skxkpb", mail("存储目录写不进去"))
    settings = make_settings(servers, boxes=("skxkpb",))
    rt = daemon.Runtime.build(settings)
    raw_dir = settings.storage / "raw"
    raw_dir.write_text("not a directory")  # every write below it fails, as on a full or broken disk
    [error] = daemon.run_once(rt)
    assert error.kind == "storage" and "无法把邮件写入存储目录" in error.message
    assert rows(rt.engine, InboundMessage) == [] and rows(rt.engine, MailboxState)[0].last_uid == 0
    raw_dir.unlink()  # the operator frees the disk: the next run picks the message up
    assert daemon.run_once(rt) == []
    assert [r.subject for r in rows(rt.engine, InboundMessage)] == ["存储目录写不进去"]


def test_mail_landing_between_the_search_and_idle_is_not_left_waiting(servers, make_settings, monkeypatch):
    """The reader searches, then enters IDLE; a message delivered in between may never be
    announced during that IDLE (Dovecot tells it only when IDLE ends). The reader returns to
    look again within IDLE_RECHECK, never the whole idle_timeout (25 minutes)."""
    import threading
    import time

    from mailbot import ingest

    monkeypatch.setattr(ingest, "IDLE_RECHECK", 3.0)
    settings = make_settings(servers, boxes=("skxkpb",), idle_timeout=20)  # without the recheck: 20 s
    box = settings.mailboxes[0]
    client = ingest.connect(box, "secret")
    real_idle = client.idle

    def idle_after_a_delivery():
        servers.append("skxkpb", mail("夹在搜索与 IDLE 之间"))
        return real_idle()

    monkeypatch.setattr(client, "idle", idle_after_a_delivery)
    started = time.monotonic()
    ingest.wait_for_news(client, box, settings, lambda: 0, threading.Event())
    waited = time.monotonic() - started
    assert waited < 10, waited  # not idle_timeout
    ingest.open_folder(client, box)
    assert len(ingest.new_uids(client, 0)) == 1  # and the next sync sees it
    ingest.close(client)
