"""`mailbot check-config --connect` against the real Dovecot and SMTP relay: each mailbox's
IMAP and SMTP login tried, and each failure named with its mailbox and why."""

from __future__ import annotations

import socket

import pytest
import yaml
from conftest import PASSWORD_ENV, mailbot_main, write_config

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_names_the_wrong_password_and_the_unreachable_host(servers, make_settings, tmp_path):
    settings = make_settings(servers)
    data = settings.model_dump(mode="json", exclude_none=True)
    data["mailboxes"][1]["password_env"] = "MAILBOT_TEST_WRONG_PASSWORD"  # skxxhb: a wrong 授权码
    port = closed_port()
    data["mailboxes"][2].update(port=port, smtp_port=port)  # skxdxb: nobody listens there
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    proc = mailbot_main("check-config", "--connect", "--config", cfg,
                        env={PASSWORD_ENV: "secret", "MAILBOT_TEST_WRONG_PASSWORD": "wrong"})
    lines = {line.split("：")[0].strip(): line for line in proc.stdout.splitlines() if line.startswith("  skx")}
    where = f"{servers.host}"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "成功" in lines[f"skxkpb IMAP {where}:{servers.imap_port}"]
    assert "成功" in lines[f"skxkpb SMTP {where}:{servers.smtp_port}"]
    assert "失败 邮箱 skxxhb：用户名或密码（授权码）不正确，服务器拒绝登录（用户 skxxhb）" in \
        lines[f"skxxhb IMAP {where}:{servers.imap_port}"]
    assert "成功" in lines[f"skxxhb SMTP {where}:{servers.smtp_port}"]  # the relay asks no login
    assert "失败 邮箱 skxdxb：无法连接" in lines[f"skxdxb IMAP {where}:{port}"]
    assert "连接被拒绝" in lines[f"skxdxb IMAP {where}:{port}"]
    assert f"失败 邮箱 skxdxb 的发信服务器：无法连接 {where}:{port}（连接被拒绝" in lines[f"skxdxb SMTP {where}:{port}"]
    assert "有 3 项连接失败" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_connect_all_good(servers, make_settings, tmp_path):
    cfg = write_config(make_settings(servers, boxes=("skxkpb",)), tmp_path / "c.yaml")
    proc = mailbot_main("check-config", "--connect", "--config", cfg, env={PASSWORD_ENV: "secret"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "全部连接成功" in proc.stdout
