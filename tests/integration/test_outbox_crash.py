"""A `mailbot run --once` child killed with SIGKILL while it sends a backlog of receipts,
then a normal run: no receipt arrives twice, every one arrives except at most the single one
that was on the wire at the kill, and that one is marked uncertain for the operator (the
drainer claims one row at a time, so nothing else can be in doubt)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlmodel import Session, func, select

from conftest import PASSWORD_ENV, mailbot_cmd, write_config
from mailbot import clock
from mailbot.store import OutboxMessage

pytestmark = pytest.mark.integration
TOTAL = 60


def gaojian(i: int) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = f"【沂水县科协】科普日活动信息 {i}", make_msgid(domain="163.example")
    m.set_content("各位老师好：我县全国科普日活动顺利举办。")
    return m.as_bytes()


def statuses(engine) -> dict[str, int]:
    with Session(engine) as s:
        return dict(s.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def test_sigkill_while_sending_loses_no_receipt_and_sends_none_twice(servers, make_settings, engine, tmp_path):
    with servers.imap("skxkpb") as imap:
        for i in range(TOTAL):
            imap.append("INBOX", gaojian(i))
    settings = make_settings(servers, boxes=("skxkpb",), outbox={"daily_cap_per_sender": 1000})
    config = write_config(settings, tmp_path / "mailbot.yaml")
    env = {**os.environ, PASSWORD_ENV: "secret"}
    child = subprocess.Popen([*mailbot_cmd(), "run", "--once", "--config", str(config)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while statuses(engine).get("sent", 0) < 5:  # the kill lands while the backlog is being sent
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    at_kill = statuses(engine)
    assert at_kill.get("pending", 0) > 0, f"the kill must land mid-send: {at_kill}"
    assert at_kill.get("sending", 0) <= 1  # only the message on the wire

    # the next run, after the sending lease: what was owed goes out, the one in doubt is not resent
    clock.CLOCK.set(clock.now() + timedelta(seconds=settings.outbox.sending_lease + 1))
    env[clock.ENV] = clock.CLOCK.env_value()
    done = subprocess.run([*mailbot_cmd(), "run", "--once", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = statuses(engine)
    assert after.get("sent", 0) + after.get("uncertain", 0) == TOTAL and after.get("uncertain", 0) <= 1
    subjects = [message_from_bytes(r, policy=policy.default)["Subject"] for r in servers.fetch_all("unit1")]
    assert len(subjects) == len(set(subjects)), "a receipt arrived twice"
    assert TOTAL - 1 <= len(subjects) <= TOTAL
    with Session(engine) as s:
        doubtful = s.exec(select(OutboxMessage).where(OutboxMessage.status == "uncertain")).all()
    assert all("无法确定对方是否已收到" in row.last_error for row in doubtful)


def test_a_parse_worker_whose_robot_is_gone_before_it_starts_ends_at_once():
    """The robot's pid is handed to the worker: one that finishes starting after the robot
    died (slow imports under load) must not take its new parent for the robot and live on."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from mailbot.pipeline import parseworker

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is not the worker's parent, as after the robot's death
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=parseworker.watch_parent, initargs=(gone.pid,)) as pool:
        with pytest.raises(BrokenProcessPool):
            pool.submit(parseworker.warm).result(timeout=60)
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=parseworker.watch_parent,
                             initargs=(os.getpid(),)) as pool:
        assert pool.submit(parseworker.warm).result(timeout=60) is None  # its own robot alive: it works
