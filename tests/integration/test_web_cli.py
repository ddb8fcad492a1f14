"""`mailbot users add` (argon2 hash, roles, a clerk's department, password from a file) and
the console started by the daemon when `web.enabled` is set (/healthz answers, sign-in works)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

import pytest
from sqlmodel import Session, select

from conftest import PASSWORD_ENV, mailbot_cmd, mailbot_main, write_config
from devtools.devservers import free_ports
from mailbot.store import WebUser
from mailbot.web.users import check_password

pytestmark = pytest.mark.integration


def test_users_add_stores_an_argon2_hash_and_the_clerks_department(servers, make_settings, engine, tmp_path):
    config = write_config(make_settings(servers), tmp_path / "mailbot.yaml")
    secret = tmp_path / "pw"
    secret.write_text("一个很长的密码 2026\n", encoding="utf-8")
    done = mailbot_main("users", "add", "zhangsan", "--role", "clerk", "--department", "科普部",
                        "--password-file", secret, "--config", config)
    assert done.returncode == 0, done.stderr
    assert "已保存用户 zhangsan（科室联络员，科普部）" in done.stdout
    with Session(engine) as s:
        user = s.exec(select(WebUser)).one()
        assert (user.role, user.department) == ("clerk", "kepu")
        assert user.password_hash.startswith("$argon2id$") and "一个很长的密码" not in user.password_hash
        assert check_password(s, "zhangsan", "一个很长的密码 2026") is not None
        assert check_password(s, "zhangsan", "一个很长的密码") is None
    for args, said in ((("--role", "boss"), "不认识的角色"), (("--role", "clerk"), "需要 --department")):
        bad = mailbot_main("users", "add", "lisi", *args, "--password-file", secret, "--config", config)
        assert bad.returncode == 2 and said in bad.stderr
    short = tmp_path / "short"
    short.write_text("1234", encoding="utf-8")
    bad = mailbot_main("users", "add", "lisi", "--role", "leader", "--password-file", short, "--config", config)
    assert bad.returncode == 2 and "至少 8 个字符" in bad.stderr
    listed = mailbot_main("users", "list", "--config", config)
    assert "zhangsan  科室联络员，科普部" in listed.stdout


@pytest.mark.slow
def test_the_daemon_serves_the_console_when_configured(servers, make_settings, tmp_path):
    port = free_ports()[0]
    config = write_config(make_settings(servers, web={"enabled": True, "port": port}), tmp_path / "mailbot.yaml")
    secret = tmp_path / "pw"
    secret.write_text("operator password\n", encoding="utf-8")
    assert mailbot_main("users", "add", "op", "--role", "operator", "--password-file", secret,
                        "--config", config).returncode == 0
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([*mailbot_cmd(), "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, PASSWORD_ENV: "secret"})
    try:
        deadline, answer = time.monotonic() + 20, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            except OSError:
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text(errors="replace")
                time.sleep(0.1)
        assert answer == b"ok"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read().decode()
        assert re.search(r'name="csrf" value="[^"]+"', page) and "登录" in page
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    assert proc.returncode == 0, (tmp_path / "daemon.log").read_text(errors="replace")
