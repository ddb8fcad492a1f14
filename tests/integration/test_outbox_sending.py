"""The outbox drainer over the real SMTP relay and Dovecot: one SMTP connection per sending
mailbox per drain round, however many messages it carries. Connections are counted by a
plain TCP forwarder between the robot and the relay (the mail still goes all the way)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlmodel import Session, select

from mailbot import clock, outbox
from mailbot.store import OutboxMessage

pytestmark = pytest.mark.integration


class Forwarder:
    """Accepts TCP connections on a free loopback port and pipes each to (host, port), counting them."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def forwarder(servers):
    fwd = Forwarder(servers.host, servers.smtp_port)
    yield fwd
    fwd.close()


def through(settings, forwarder):
    """The settings with every mailbox's SMTP going through the forwarder."""
    return settings.model_copy(update={"mailboxes": [b.model_copy(update={"smtp_port": forwarder.port})
                                                     for b in settings.mailboxes]})


def queue(engine, settings, mailbox: str, to: str, n: int) -> None:
    now = clock.now()
    with Session(engine) as session:
        out = outbox.Outgoing(kind="review-request", mailbox=mailbox, from_name="科普部",
                              from_address=settings.mailbox(mailbox).email, to_name="", to_address=to,
                              subject=f"第 {n} 封", text=f"第 {n} 封\n", html=None,
                              message_id=outbox.new_message_id("review", f"t{n}", "example.test"), date=now)
        outbox.enqueue(session, out, settings.outbox, now)
        session.commit()


def test_one_smtp_connection_per_mailbox_sends_the_whole_round(servers, make_settings, engine, forwarder):
    settings = through(make_settings(servers), forwarder)
    for n in range(12):
        queue(engine, settings, "skxkpb", "unit1@example.test", n)
    for n in range(12, 15):
        queue(engine, settings, "skxxhb", "unit2@example.test", n)
    counts = asyncio.run(outbox.drain(engine, settings))
    assert (counts.sent, counts.retry, counts.failed) == (15, 0, 0)
    assert forwarder.connections == 2  # one per sending mailbox, not one per message
    got = sorted(message_from_bytes(raw, policy=policy.default)["Subject"] for raw in servers.fetch_all("unit1"))
    assert got == sorted(f"第 {n} 封" for n in range(12))
    assert len(servers.fetch_all("unit2")) == 3
    with Session(engine) as session:
        assert {r.status for r in session.exec(select(OutboxMessage)).all()} == {"sent"}


def test_a_refused_recipient_does_not_end_the_connection(servers, make_settings, engine, forwarder):
    settings = through(make_settings(servers), forwarder)
    queue(engine, settings, "skxkpb", "unit1@example.test", 1)
    queue(engine, settings, "skxkpb", "nobody@example.test", 2)  # the relay answers 550 at RCPT
    queue(engine, settings, "skxkpb", "unit1@example.test", 3)
    counts = asyncio.run(outbox.drain(engine, settings))
    assert (counts.sent, counts.failed) == (2, 1)
    assert forwarder.connections == 1
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [r.status for r in rows] == ["sent", "failed", "sent"]
    assert "收件人被拒绝" in rows[1].last_error
    assert len(servers.fetch_all("unit1")) == 2


def test_a_large_letter_is_streamed_intact_and_the_connection_goes_on(servers, make_settings, engine, forwarder):
    """A 3 MB file (over the size from which letters go out a slice at a time) arrives byte
    for byte, and the same connection then carries a small letter."""
    settings = through(make_settings(servers), forwarder)
    data = bytes(range(256)) * (3 * 4096) + b"\r\n.\r\nend"  # a "line" starting with "." inside the file
    now = clock.now()
    with Session(engine) as session:
        big = outbox.letter("result", "review-returned", settings=settings, to="unit1@example.test", now=now,
                            tag="KP-2026-0001", from_department="kepu", tracking="KP-2026-0001", title="稿件",
                            greeting="沂水县科协", stage="初审", reason="请修改", revision=1, files=["批注.bin"],
                            attachments=(("批注.bin", data, "application/octet-stream"),))
        assert len(outbox.build(big)) > outbox._STREAM_FROM
        outbox.enqueue(session, big, settings.outbox, now)
        session.commit()
    queue(engine, settings, "skxkpb", "unit1@example.test", 2)
    counts = asyncio.run(outbox.drain(engine, settings))
    assert (counts.sent, counts.failed, counts.retry) == (2, 0, 0)
    assert forwarder.connections == 1
    got = [message_from_bytes(raw, policy=policy.default) for raw in servers.fetch_all("unit1")]
    [returned] = [m for m in got if m.get_content_type() == "multipart/mixed"]
    [attachment] = list(returned.iter_attachments())
    assert attachment.get_filename() == "批注.bin" and attachment.get_content() == data
    assert sorted(m["Subject"] for m in got if m is not returned) == ["第 2 封"]


def test_an_smtp_outage_shows_in_status_and_run_once_exits_non_zero(servers, make_settings, tmp_path):
    import json

    from conftest import PASSWORD_ENV, mailbot_main, write_config

    servers.append("skxkpb", (b"From: =?utf-8?b?5rKC5rC05Y6/56eR5Y2P?= <unit1@example.test>\r\nTo: skxkpb@example.test\r\n"
                              b"Subject: =?utf-8?b?56eR5pmu5pel5rS75Yqo5L+h5oGv?=\r\nMessage-ID: <outage-1@163.example>\r\n"
                              b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"))
    servers.smtp.stop()
    config = write_config(make_settings(servers, boxes=("skxkpb",)), tmp_path / "mailbot.yaml")
    env = {PASSWORD_ENV: "secret"}
    done = mailbot_main("run", "--once", "--config", config, env=env)
    assert done.returncode == 3 and "1 封邮件未能发出" in done.stderr
    status = json.loads(mailbot_main("status", "--json", "--config", config, env=env).stdout)
    sending = status["sending"]
    assert (sending["ok"], sending["waiting"], sending["failing"]) == (False, 1, 1)
    assert "无法连接 SMTP 服务器" in sending["last_error"] and sending["failing_since"]

    servers.smtp.start()
    time.sleep(0.3)
    moved = clock.now() + timedelta(hours=1)  # past the retry's backoff
    clock.CLOCK.set(moved)
    env[clock.ENV] = clock.CLOCK.env_value()
    assert mailbot_main("run", "--once", "--config", config, env=env).returncode == 0
    status = json.loads(mailbot_main("status", "--json", "--config", config, env=env).stdout)
    assert status["sending"] == {"ok": True, "waiting": 0, "failing": 0, "last_error": None, "failing_since": None}
