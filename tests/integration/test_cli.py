"""The operator's commands as typed: clear Chinese messages and exit codes, never a traceback.
Most run in this process through the real main() (conftest.mailbot_main); `run --once`, which
logs in to the mailboxes as the daemon does, and the console script run as child processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD_ENV, PG_URL, mailbot_cmd, mailbot_main, write_config
from sqlalchemy import text

from mailbot.store import make_engine, schema

pytestmark = pytest.mark.integration
MAIL = Path(__file__).parents[1] / "mail"


def mailbot(*args, env_extra=None):
    """In this process, through main()."""
    return mailbot_main(*args, env={PASSWORD_ENV: "secret", **(env_extra or {})})


def mailbot_process(*args, env_extra=None, timeout=120):
    """`python -m mailbot ARGS` as a child process."""
    env = {**os.environ, PASSWORD_ENV: "secret", **(env_extra or {})}
    env.pop("MAILBOT_DEBUG", None)
    proc = subprocess.run([*mailbot_cmd(), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_config_ok_and_bad(servers, make_settings, tmp_path):
    good = write_config(make_settings(servers), tmp_path / "good.yaml")
    proc = mailbot("check-config", "--config", good)
    assert proc.returncode == 0 and "配置检查通过" in proc.stdout
    proc = mailbot("check-config", "--config", good, env_extra={PASSWORD_ENV: ""})
    assert proc.returncode == 0  # set (even if empty) is set
    bad = tmp_path / "bad.yaml"
    bad.write_text("poll_interval: abc\nmailboxes:\n  - {name: x, host: h, user: u, password: p}\n", "utf-8")
    proc = mailbot("check-config", "--config", bad)
    assert proc.returncode == 2
    assert "配置有 3 处问题" in proc.stderr
    assert f"{bad}: poll_interval：应为数字" in proc.stderr.replace("\n", "")
    proc = mailbot("check-config", "--config", tmp_path / "missing.yaml")
    assert proc.returncode == 2 and "找不到配置文件" in proc.stderr


def test_wrong_password_and_unreachable_host_are_clear(servers, make_settings, tmp_path):
    settings = make_settings(servers, boxes=("skxkpb",))
    cfg = write_config(settings, tmp_path / "c.yaml")
    proc = mailbot_process("run", "--once", "--config", cfg, env_extra={PASSWORD_ENV: "wrong"})
    assert proc.returncode == 2
    assert "用户名或密码（授权码）不正确" in proc.stderr

    data = settings.model_dump(mode="json", exclude_none=True)
    data["mailboxes"][0]["port"] = closed_port()
    import yaml

    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    proc = mailbot_process("run", "--once", "--config", cfg)
    assert proc.returncode == 2 and "无法连接" in proc.stderr and "连接被拒绝" in proc.stderr


def test_run_once_then_replay_and_parse(servers, make_settings, tmp_path):
    settings = make_settings(servers, boxes=("skxkpb",))
    cfg = write_config(settings, tmp_path / "c.yaml")
    servers.append("skxkpb", (MAIL / "0001-gb2312-label-gbk-only-chars.eml").read_bytes())
    proc = mailbot_process("run", "--once", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    assert "新存 1 封" in proc.stdout and "解析 1 封" in proc.stdout

    fixture = MAIL / "0019-no-message-id.eml"
    proc = mailbot("replay", fixture, "--mailbox", "skxkpb", "--config", cfg)
    assert proc.returncode == 0 and "已存储并解析" in proc.stdout
    proc = mailbot("replay", fixture, "--mailbox", "skxkpb", "--config", cfg)
    assert proc.returncode == 0 and "以前已收到并处理过" in proc.stdout
    proc = mailbot("replay", fixture, "--mailbox", "nosuch", "--config", cfg)
    assert proc.returncode == 2 and "没有名为 nosuch 的邮箱" in proc.stderr

    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"no header here\nat all\n")
    proc = mailbot("replay", junk, "--mailbox", "skxkpb", "--config", cfg)
    assert proc.returncode == 1 and "已隔离" in proc.stdout and "不是一封可读的邮件" in proc.stdout
    proc = mailbot("parse", junk)
    assert proc.returncode == 3 and "不是一封邮件" in proc.stderr
    proc = mailbot("parse", tmp_path / "nope.eml")
    assert proc.returncode == 2 and "找不到文件" in proc.stderr
    proc = mailbot("parse", MAIL / "0001-gb2312-label-gbk-only-chars.eml")
    assert proc.returncode == 0 and "李喆" in proc.stdout


def test_the_console_script_runs_the_same_main(tmp_path):
    """`mailbot` as installed (the console script, not `python -m mailbot`): output and exit codes."""
    script = Path(sys.executable).with_name("mailbot")
    found = str(script) if script.exists() else shutil.which("mailbot")
    assert found, "the console script `mailbot` is not installed: run scripts/setup.sh (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k != "MAILBOT_DEBUG"}
    fixture = MAIL / "0001-gb2312-label-gbk-only-chars.eml"
    proc = subprocess.run([found, "parse", str(fixture), "--json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(mailbot_main("parse", fixture, "--json", cwd=tmp_path).stdout)
    proc = subprocess.run([found, "parse", str(tmp_path / "nope.eml")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "找不到文件" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: the embedded SQLite database upgrades itself")
def test_out_of_date_postgres_schema_is_refused_until_db_upgrade(servers, make_settings, tmp_path, db_url):
    settings = make_settings(servers, boxes=("skxkpb",))
    engine = make_engine(db_url)
    with engine.begin() as conn:  # back to an empty schema: as if the code were newer than the database
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).all()
        for (table,) in tables:
            conn.execute(text(f'DROP TABLE "{table}" CASCADE'))
    cfg = write_config(settings, tmp_path / "c.yaml")
    proc = mailbot_process("run", "--once", "--config", cfg)
    assert proc.returncode == 2 and "mailbot db upgrade" in proc.stderr
    proc = mailbot("db", "upgrade", "--config", cfg)
    assert proc.returncode == 0 and f"→ {schema.head_revision()}" in proc.stdout
    proc = mailbot_process("run", "--once", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
