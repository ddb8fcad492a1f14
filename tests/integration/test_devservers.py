"""Integration tests for mailbot.devservers against real Dovecot and aiosmtpd (no mocks)."""

from __future__ import annotations

import asyncio
import os
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Iterator

import aiosmtplib
import pytest
from conftest import stop_in_background

from devtools.devservers import MailServers

pytestmark = pytest.mark.integration

SUBJECT = "关于《稿件》的审稿意见 — 第二轮"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[MailServers, MailServers]]:
    first = MailServers().start()
    try:
        second = MailServers().start()
    except BaseException:
        first.stop()
        raise
    yield first, second
    stop_in_background(first)  # side by side, while the next tests run
    stop_in_background(second)


def _message(servers: MailServers, to: list[str]) -> bytes:
    msg = EmailMessage()
    msg["From"] = servers.address("unit1")
    msg["To"] = ", ".join(servers.address(u) for u in to)
    msg["Subject"] = SUBJECT
    msg.set_content("各位专家：\n\n请审阅附件中的稿件。\n\n谢谢！\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="稿件.pdf")
    return msg.as_bytes(policy=policy.SMTP)  # CRLF, exactly what goes over the wire


def _send(servers: MailServers, raw: bytes, to: list[str]) -> None:
    asyncio.run(aiosmtplib.send(
        raw, sender=servers.address("unit1"), recipients=[servers.address(u) for u in to],
        hostname=servers.host, port=servers.smtp_port, start_tls=False, timeout=30))


def _split_lmtp_headers(fetched: bytes, raw: bytes) -> bytes:
    """What LMTP prepended; asserts the rest is byte-identical to what was sent."""
    assert fetched.endswith(raw)
    added = fetched[: len(fetched) - len(raw)]
    names = {line.split(b":", 1)[0] for line in added.split(b"\r\n")
             if line and not line[:1].isspace()}
    assert names <= {b"Return-Path", b"Delivered-To", b"Received"}
    return added


def test_side_by_side_instances_are_separate(pair: tuple[MailServers, MailServers]) -> None:
    first, second = pair
    ports = {first.imap_port, first.lmtp_port, first.smtp_port,
             second.imap_port, second.lmtp_port, second.smtp_port}
    assert len(ports) == 6
    assert first.dir != second.dir
    conf = [(s.dir / "dovecot.conf").read_text() for s in pair]  # type: ignore[operator]
    names = [next(l for l in c.splitlines() if l.startswith("instance_name")) for c in conf]
    assert names[0] != names[1]


def test_chinese_message_with_attachment_reaches_both_inboxes(
        pair: tuple[MailServers, MailServers]) -> None:
    for servers in pair:
        to = ["reviewer1", "skxkpb"]
        raw = _message(servers, to)
        _send(servers, raw, to)
        assert servers.smtp is not None and servers.smtp.received[-1][2] == raw
        for user in to:
            fetched = servers.fetch_all(user)[-1]
            added = _split_lmtp_headers(fetched, raw)
            assert f"Delivered-To: {servers.address(user)}".encode() in added
            parsed = BytesParser(policy=policy.default).parsebytes(fetched)
            assert parsed["Subject"] == SUBJECT
            [attachment] = list(parsed.iter_attachments())
            assert attachment.get_filename() == "稿件.pdf"
            assert attachment.get_content() == PDF
        with servers.imap("reviewer1") as client:
            client.select_folder("INBOX", readonly=True)
            assert client.search(["SUBJECT", "稿件"], charset="UTF-8")


def test_unknown_recipient_is_refused_at_rcpt(pair: tuple[MailServers, MailServers]) -> None:
    servers = pair[0]
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        _send(servers, b"Subject: x\r\n\r\nx\r\n", ["nosuchuser"])
    [refusal] = info.value.recipients
    assert refusal.code == 550


def test_restart_keeps_ports_and_mail(pair: tuple[MailServers, MailServers]) -> None:
    servers = pair[1]
    assert servers.dovecot is not None
    before = (servers.imap_port, servers.lmtp_port)
    uid = servers.append("leader1", b"Subject: kept\r\n\r\nkept over restart\r\n")
    servers.dovecot.restart()
    assert (servers.imap_port, servers.lmtp_port) == before
    with servers.imap("leader1") as client:
        client.select_folder("INBOX")
        assert uid in client.search("ALL")
    _send(servers, b"Subject: after\r\n\r\nafter restart\r\n", ["leader1"])  # LMTP back too


def test_uidvalidity_change_is_seen_on_next_select(
        pair: tuple[MailServers, MailServers]) -> None:
    servers = pair[0]
    assert servers.dovecot is not None
    servers.append("reviewer2", b"Subject: v\r\n\r\nv\r\n")
    with servers.imap("reviewer2") as client:
        old = client.select_folder("INBOX")[b"UIDVALIDITY"]
    new = old + 12345
    servers.dovecot.doveadm("mailbox", "update", "-u", "reviewer2",
                            "--uid-validity", str(new), "INBOX")
    with servers.imap("reviewer2") as client:
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] == new


def _children(pid: int) -> set[int]:
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_leaves_no_process_and_no_dir() -> None:
    servers = MailServers().start()
    assert servers.dovecot is not None and servers.dir is not None
    master, workdir = servers.dovecot.pid, servers.dir
    assert master is not None and workdir.is_dir()
    servers.imap("unit2").logout()
    workers = _children(master)
    assert workers  # dovecot runs imap-login, auth, log, ... under the master
    servers.stop()
    assert not workdir.exists()
    assert master not in _children(os.getpid()) and not _alive(master)
    deadline = time.monotonic() + 5  # workers notice the master's exit on their own
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)
    servers.stop()  # idempotent


def test_failed_delivery_at_data_is_temporary(pair: tuple[MailServers, MailServers]) -> None:
    servers = pair[1]
    assert servers.dovecot is not None

    async def session() -> aiosmtplib.SMTPDataError:
        async with aiosmtplib.SMTP(hostname=servers.host, port=servers.smtp_port,
                                   start_tls=False, timeout=30) as smtp:
            await smtp.mail(servers.address("unit1"))
            await smtp.rcpt(servers.address("leader1"))  # accepted: Dovecot is still up
            servers.dovecot.stop()  # type: ignore[union-attr]
            with pytest.raises(aiosmtplib.SMTPDataError) as info:
                await smtp.data(b"Subject: lost?\r\n\r\nnot lost\r\n")
            return info.value

    try:
        error = asyncio.run(session())
    finally:
        servers.dovecot.start()
    assert error.code == 451
