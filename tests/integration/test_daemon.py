"""The daemon as operators run it (`mailbot run` in its own process) against real Dovecot:
IDLE latency, SIGKILL in the middle of a batch, a mail server restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from conftest import PASSWORD_ENV, mailbot_cmd, write_config
from sqlmodel import Session, func, select

from mailbot.store import InboundMessage, MessageCopy

pytestmark = pytest.mark.integration


def mail(subject: str, size: int = 0) -> bytes:
    m = EmailMessage()
    m["From"] = "unit1@example.test"
    m["To"] = "skxkpb@example.test"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="unit.example")
    m.set_content("稿件正文")
    if size:
        m.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename="稿件.pdf")
    return m.as_bytes()


class Daemon:
    """`mailbot run` as a child process with its log captured."""

    def __init__(self, config, log_path):
        self.config, self.log_path, self.proc = config, log_path, None

    def start(self) -> "Daemon":
        env = {**os.environ, PASSWORD_ENV: "secret"}
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*mailbot_cmd(), "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_log(self, needle: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace").count(needle) >= count:
                return
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} in log:\n{self.log_path.read_text(errors='replace')}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def daemon_factory(tmp_path):
    started = []

    def make(settings):
        d = Daemon(write_config(settings, tmp_path / f"mailbot-{len(started)}.yaml"),
                   tmp_path / f"daemon-{len(started)}.log")
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop(signal.SIGKILL)


def count(engine, where=None) -> int:
    with Session(engine) as s:
        q = select(func.count()).select_from(InboundMessage)
        if where is not None:
            q = q.where(where)
        return s.exec(q).one()


def wait_until(cond, timeout: float, step: float = 0.02) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def test_idle_picks_up_a_new_message_within_two_seconds(servers, make_settings, daemon_factory, engine):
    settings = make_settings(servers, boxes=("skxkpb", "skxdxb"))
    d = daemon_factory(settings)
    d.wait_log(": connected", count=2)
    time.sleep(0.3)  # let both readers enter IDLE
    for i, box in enumerate(("skxkpb", "skxdxb")):
        servers.append(box, mail(f"IDLE 测试 {i}"))
        took = wait_until(lambda: count(engine, InboundMessage.status == "parsed") == i + 1, timeout=2.0)
        assert took < 2.0
    assert d.stop() == 0
    assert "mailbot stopped: fetched 2, stored 2" in d.log_path.read_text()


def test_sigkill_in_the_middle_of_a_batch_loses_and_duplicates_nothing(servers, make_settings, daemon_factory, engine):
    total = 120
    with servers.imap("skxkpb") as imap:
        imap.select_folder("INBOX")
        for i in range(total):
            imap.append("INBOX", mail(f"批量稿件 {i}", size=30_000 if i % 10 == 0 else 0))
    settings = make_settings(servers, boxes=("skxkpb",), batch_size=5, idle=False)
    d = daemon_factory(settings)
    wait_until(lambda: count(engine) >= 10, timeout=30, step=0.005)
    d.stop(signal.SIGKILL)
    stored_at_kill = count(engine)
    assert 0 < stored_at_kill < total, "the kill must land mid-run"

    env = {**os.environ, PASSWORD_ENV: "secret"}
    done = subprocess.run([*mailbot_cmd(), "run", "--once", "--config", str(d.config)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    with Session(engine) as s:
        keys = s.exec(select(InboundMessage.key)).all()
        copies = s.exec(select(MessageCopy.mailbox, MessageCopy.uid)).all()
        pending = s.exec(select(func.count()).select_from(InboundMessage)
                         .where(InboundMessage.status != "parsed")).one()
    assert len(keys) == len(set(keys)) == total
    assert sorted(uid for _box, uid in copies) == list(range(1, total + 1))
    assert pending == 0


def test_daemon_reconnects_after_dovecot_restart(servers, make_settings, daemon_factory, engine):
    settings = make_settings(servers, boxes=("skxkpb",))
    d = daemon_factory(settings)
    d.wait_log(": connected")
    servers.append("skxkpb", mail("重启前"))
    wait_until(lambda: count(engine, InboundMessage.status == "parsed") == 1, timeout=5)
    servers.dovecot.restart()
    servers.append("skxkpb", mail("重启后"))
    wait_until(lambda: count(engine, InboundMessage.status == "parsed") == 2, timeout=20)
    d.wait_log(": connected", count=2)
    with Session(engine) as s:
        assert sorted(s.exec(select(InboundMessage.subject)).all()) == ["重启前", "重启后"]
    assert d.stop() == 0


def test_two_robots_on_the_same_mailboxes_store_each_message_once(servers, make_settings, engine, tmp_path):
    """Several workers (a PostgreSQL deployment): unique keys and row locks keep it exact."""
    total = 60
    for i in range(total):
        servers.append("skxkpb" if i % 2 else "skxdxb", mail(f"并发稿件 {i}", size=20_000 if i % 7 == 0 else 0))
    settings = make_settings(servers, boxes=("skxkpb", "skxdxb"), batch_size=5)
    cfg = write_config(settings, tmp_path / "both.yaml")
    env = {**os.environ, PASSWORD_ENV: "secret"}
    procs = [subprocess.Popen([*mailbot_cmd(), "run", "--once", "--config", str(cfg)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with Session(engine) as s:
        keys = s.exec(select(InboundMessage.key)).all()
        statuses = set(s.exec(select(InboundMessage.status)).all())
        copies = s.exec(select(MessageCopy.mailbox, MessageCopy.uid)).all()
    assert len(keys) == len(set(keys)) == total and statuses == {"parsed"}
    assert len(copies) == len(set(copies)) == total
