"""Roster and campaign changes reach the running daemon without a restart: `mailbot units add`
then SIGHUP, then a file watch, each logged as what changed; a broken edit is refused and the
robot goes on with what it had (a real `mailbot run` process against Dovecot)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
import yaml
from conftest import PASSWORD_ENV, mailbot_cmd, mailbot_main
from sqlmodel import Session, select

from mailbot.store import Submission

pytestmark = pytest.mark.integration

ROSTER = """# 单位名册：注释在编辑后仍保留
units:
  - name: 沂水县科协      # 县区科协
    aliases: [沂水科协]
    category: 县区科协
    parent: 沂水县
    addresses: [unit1@example.test]
"""


def wait_for(path, needle: str, proc, timeout: float = 20, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(needle) >= count:
            return
        assert proc.poll() is None, path.read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"no {needle!r} in log:\n{path.read_text(errors='replace')}")


def send(servers, sender: str, subject: str) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, servers.address("skxkpb"), subject
    m["Message-ID"] = make_msgid(domain="lanshan.example")
    m.set_content("稿件正文见附件。")
    asyncio.run(aiosmtplib.send(m.as_bytes(), sender=sender, recipients=[servers.address("skxkpb")],
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))


def test_roster_changes_reach_the_running_daemon(servers, make_settings, engine, tmp_path):
    data = make_settings(servers, reload_check=0).model_dump(mode="json", exclude_none=True)
    data.pop("units")
    roster = tmp_path / "units.yaml"
    roster.write_text(ROSTER, encoding="utf-8")
    data["roster"] = "units.yaml"  # read from the config file's folder
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    log_path = tmp_path / "daemon.log"
    env = {**os.environ, PASSWORD_ENV: "secret"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*mailbot_cmd(), "run", "--config", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path.parent)
    try:
        wait_for(log_path, "skxkpb: connected", proc)
        done = mailbot_main("units", "add", "兰山区科协", "--category", "县区科协", "--parent", "兰山区",
                            "--address", "lskx@lanshan.example", "--config", cfg, env={PASSWORD_ENV: "secret"})
        assert done.returncode == 0 and "已添加单位 兰山区科协" in done.stdout, done.stdout + done.stderr
        assert "注释在编辑后仍保留" in roster.read_text(encoding="utf-8")
        data["reload_check"] = 0.2  # the same reload turns the file watch on
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        time.sleep(0.5)
        assert "reload:" not in log_path.read_text(errors="replace")  # no watch yet: SIGHUP only
        proc.send_signal(signal.SIGHUP)
        wait_for(log_path, "reload: units added: 兰山区科协", proc)
        wait_for(log_path, "reload: reload_check changed", proc)

        send(servers, "lskx@lanshan.example", "兰山区科普进社区活动")

        def filed():
            with Session(engine) as s:
                return s.exec(select(Submission.unit)).all()

        deadline = time.monotonic() + 20
        while filed() != ["兰山区科协"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert filed() == ["兰山区科协"]  # the new unit is known to the running robot

        # the file watch: an edit without a signal
        done = mailbot_main("units", "edit", "兰山区科协", "--add-alias", "兰山科协", "--config", cfg,
                            env={PASSWORD_ENV: "secret"})
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(log_path, "reload: units changed: 兰山区科协 (aliases)", proc)

        # a broken roster is refused; the robot keeps what it had
        roster.write_text(ROSTER + "  - name: 兰\n", encoding="utf-8")
        wait_for(log_path, "configuration not reloaded", proc)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0, log_path.read_text(errors="replace")
