"""What an office's IT person installs: the compose file (validated by docker-compose), the image's
Dockerfile, the systemd units (`systemd-analyze verify`), the install script (run into a temp
prefix without apt or a user), the lock files, and the daemon's sd_notify READY/WATCHDOG.

Containers cannot run on this machine (no Docker engine; podman from Debian installs but cannot
pull debian:bookworm-slim without a registry), so the image itself is not built here."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import PASSWORD_ENV, ROOT, mailbot_cmd, write_config

pytestmark = pytest.mark.integration
UNITS = ROOT / "deploy" / "systemd"


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def requirement_names(specs: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", s)[0]).lower() for s in specs}


# --- compose and Dockerfile ----------------------------------------------------------------


def test_compose_file_is_valid_and_complete(tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "config").mkdir()
    for name in ("db.env", "mailbot.env"):
        (tmp_path / "secrets" / name).write_text("")
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    done = subprocess.run([tool, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"db", "migrate", "mailbot", "web"}
    for name in ("db", "mailbot", "web"):  # long-running: restarted and health-checked
        assert services[name]["restart"] == "unless-stopped" and services[name]["healthcheck"]["test"]
    assert services["mailbot"]["healthcheck"]["test"] == ["CMD", "mailbot", "health"]
    assert services["mailbot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["mailbot", "db", "upgrade"]
    for name in ("migrate", "mailbot", "web"):
        svc = services[name]
        assert "pip" not in " ".join(svc["command"])  # nothing installed at start
        assert any(str(v).endswith("/var/lib/mailbot:rw") for v in svc["volumes"])  # storage writable
        assert any(str(v).endswith(":/srv/mailbot/config:ro") for v in svc["volumes"])  # config read-only
        assert not any("PASSWORD" in k for k in svc.get("environment", {}))  # secrets only via env files
    assert any("db-data:/var/lib/postgresql/data" in str(v) for v in services["db"]["volumes"])


def test_dockerfile_builds_the_server_install_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:bookworm-slim$", text, re.M)
    assert "scripts/install-server.sh --no-systemd" in text
    assert re.search(r"^USER mailbot$", text, re.M)
    assert re.search(r'^HEALTHCHECK .*CMD \["mailbot", "health"\]$', text, re.M)
    assert re.search(r'^CMD \["mailbot", "run"', text, re.M)


# --- systemd -------------------------------------------------------------------------------


def units_for_here(tmp_path: Path) -> list[Path]:
    """The units with /opt/mailbot pointing at this checkout's virtualenv (verify wants ExecStart to exist)."""
    venv = Path(sys.executable).parent.parent
    out = []
    for unit in sorted(UNITS.glob("*.service")):
        target = tmp_path / unit.name
        target.write_text(unit.read_text().replace("/opt/mailbot", str(venv)))
        out.append(target)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (Debian package systemd)")
def test_systemd_units_verify_and_are_hardened(tmp_path):
    units = units_for_here(tmp_path)
    assert [u.name for u in units] == ["mailbot-web.service", "mailbot.service"]
    done = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for unit in units:
        text = unit.read_text()
        for line in ("ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "User=mailbot",
                     "ReadWritePaths=/var/lib/mailbot /var/log/mailbot", "Restart=on-failure"):
            assert line in text.splitlines(), (unit.name, line)
    daemon = (UNITS / "mailbot.service").read_text().splitlines()
    assert "Type=notify" in daemon and any(line.startswith("WatchdogSec=") for line in daemon)


def test_daemon_tells_systemd_ready_and_pings_the_watchdog(servers, make_settings, engine, tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    listener.bind(address)
    listener.settimeout(30)
    config = write_config(make_settings(servers, boxes=("skxkpb",)), tmp_path / "mailbot.yaml")
    env = {**os.environ, PASSWORD_ENV: "secret", "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([*mailbot_cmd(), "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got: list[str] = []
    try:
        started = time.monotonic()
        while got.count("WATCHDOG=1") < 3:
            got.append(listener.recv(4096).decode())
        took = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert got[0].startswith("READY=1\nSTATUS=1 mailbox(es)")
    assert got.count("WATCHDOG=1") == 3 and took < 20  # every 0.5 s: half of WATCHDOG_USEC
    while True:  # and STOPPING=1 at the end
        message = listener.recv(4096).decode()
        if message != "WATCHDOG=1":
            break
    assert message == "STOPPING=1"
    listener.close()


def test_stalled_loop_stops_pinging():
    """The pings come from the event loop: while it is blocked, none is sent."""
    import asyncio

    from mailbot.runtime.notify import Notifier

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        address = f"/tmp/mailbot-notify-{os.getpid()}.sock"
        listener.bind(address)
        listener.setblocking(False)
        try:
            notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})

            async def scenario() -> None:
                dog = asyncio.create_task(notifier.watchdog_loop())
                await asyncio.sleep(0.35)  # pings at 0, 0.1, 0.2, 0.3
                time.sleep(0.5)  # the loop stalls: a blocking call where an await belonged
                dog.cancel()

            asyncio.run(scenario())
            pings = []
            while True:
                try:
                    pings.append(listener.recv(64))
                except BlockingIOError:
                    break
        finally:
            os.unlink(address)
    assert 3 <= len(pings) <= 5  # none while stalled (0.5 s would have given 5 more)


# --- install script and locks ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("MAILBOT_TEST_DATABASE_URL")),
                    reason="no database in it: it runs once, in the SQLite pass")
def test_install_script_into_a_prefix(tmp_path):
    prefix = tmp_path / "root"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "install-server.sh"), "--prefix", str(prefix), "--no-apt",
                           "--no-user"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    opt, etc = prefix / "opt" / "mailbot", prefix / "etc" / "mailbot"
    for folder in (etc, prefix / "var" / "lib" / "mailbot", prefix / "var" / "log" / "mailbot"):
        assert folder.is_dir() and oct(folder.stat().st_mode)[-3:] == "750"
    installed = subprocess.run([str(opt / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "mailbot" in names and not names & {"pytest", "aiosmtpd", "psutil", "import-linter"}  # runtime only
    env = {**os.environ, "MAILBOT_PASSWORD_SKXKPB": "x", "MAILBOT_PASSWORD_SKXXHB": "x", "MAILBOT_PASSWORD_SKXDXB": "x",
           "PYTHONPATH": ""}
    check = subprocess.run([str(opt / "bin" / "mailbot"), "check-config", "--config", str(etc / "mailbot.yaml")],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert check.returncode == 0 and "配置检查通过" in check.stdout, check.stdout + check.stderr
    assert str(prefix / "var" / "lib" / "mailbot") in check.stdout
    units = sorted((prefix / "etc" / "systemd" / "system").glob("*.service"))
    assert [u.name for u in units] == ["mailbot-web.service", "mailbot.service"]
    assert f"ExecStart={opt}/bin/mailbot run" in units[1].read_text()
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    again = subprocess.run(["bash", str(ROOT / "scripts" / "install-server.sh"), "--prefix", str(prefix), "--no-apt",
                            "--no-user"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "example configuration" not in again.stdout  # the config is kept


def test_lock_files_have_hashes_and_keep_test_packages_out_of_production():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, test = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-test.lock")
    for path in ("requirements.lock", "requirements-test.lock"):
        blocks = re.split(r"\n(?=[A-Za-z])", (ROOT / path).read_text().split("\n", 2)[2])
        assert all("--hash=sha256:" in block for block in blocks if block.strip()), path
    assert requirement_names(project["dependencies"]) <= set(runtime)
    assert requirement_names(project["optional-dependencies"]["test"]) <= set(test)
    assert not set(runtime) & {"pytest", "aiosmtpd", "psutil", "import-linter", "jsonschema"}
    assert {name: test[name] for name in runtime} == runtime  # one version of each package
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements.lock" in setup and "-r requirements-test.lock" in setup
