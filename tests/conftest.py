"""Shared fixtures: a fresh database (SQLite, or PostgreSQL when MAILBOT_TEST_DATABASE_URL
is set: one schema per test), real mail servers, and settings that point at both."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text

from devtools.devservers import MailServers
from mailbot import clock
from mailbot.config import Settings
from mailbot.store import make_engine, schema

ROOT = Path(__file__).resolve().parents[1]
MAIL = ROOT / "tests" / "mail"
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("MAILBOT_TEST_DATABASE_URL")
PASSWORD_ENV = "MAILBOT_TEST_PASSWORD"
# The test roster: unit1/unit2 are mail server users, so receipts can be read back over IMAP.
TEST_UNITS = [
    {"name": "沂水县科协", "aliases": ["沂水科协"], "category": "县区科协", "parent": "沂水县",
     "addresses": ["unit1@example.test"]},
    {"name": "临沂市农学会", "aliases": ["市农学会"], "category": "学会", "addresses": ["unit2@example.test"]},
    {"name": "临沂市科技馆", "category": "科普基地", "domains": ["kjg.example.test"]},
]
TEST_ROUTING = {"default": "diaoxuan", "unknown": "diaoxuan", "rules": [
    {"name": "科普基地、农技协", "categories": ["科普基地", "农技协"], "department": "kepu"},
    {"name": "学会、协会、研究会、企事业科协", "categories": ["学会", "协会", "研究会", "企事业科协"], "department": "xuehui"},
    {"name": "各级科协科普活动信息", "categories": ["县区科协"], "keywords": ["科普"], "department": "kepu"},
]}


# The moment every test runs at: never the real date. MAILBOT_TEST_NOW moves the whole run
# (CI runs the time-dependent tests again at a few hard moments: Sunday 23:59, New Year's Eve …).
DEFAULT_TEST_NOW = "2026-12-09T10:00:00+08:00"  # a Wednesday in office hours
TEST_NOW = clock.parse_env(os.environ.get("MAILBOT_TEST_NOW") or DEFAULT_TEST_NOW)[0]


# Modules whose behaviour depends on the date or the hour: `-m clock` selects them, and CI runs
# them again at fixed hard moments (scripts/test.sh). A test in them marked `pinned_clock` sets
# the clock to its own moments before anything reads it, so the run's moment changes nothing:
# it is left out of those re-runs.
TIME_DEPENDENT = {"test_digest", "test_digest_cases", "test_campaigns", "test_campaign_extras", "test_deadlines",
                  "test_review", "test_review_core", "test_workdays", "test_workdays_config", "test_calendar_cli",
                  "test_operator_cli", "test_filing", "test_clock_matrix"}


def pytest_report_header(config):
    return f"mailbot clock: tests start at {TEST_NOW.isoformat()} (MAILBOT_TEST_NOW)"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in TIME_DEPENDENT and not item.get_closest_marker("pinned_clock"):
            item.add_marker(pytest.mark.clock)


@pytest.fixture(autouse=True)
def test_clock(monkeypatch):
    """The one clock, set to the run's moment and ticking from there; child processes
    (the real CLI, the daemon) share it through MAILBOT_NOW. Yields the Clock."""
    clock.CLOCK.set(TEST_NOW)
    monkeypatch.setenv(clock.ENV, clock.CLOCK.env_value())
    yield clock.CLOCK
    clock.CLOCK.reset()


def move_clock(monkeypatch, moment) -> None:
    """Set the clock to `moment` (ticking), here and in child processes started afterwards."""
    clock.CLOCK.set(moment)
    monkeypatch.setenv(clock.ENV, clock.CLOCK.env_value())


@pytest.fixture
def db_url(tmp_path):
    """A URL to an empty database of the backend under test."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'mailbot.db'}"
        return
    name = f"mbt_{secrets.token_hex(6)}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={name}')}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    admin.dispose()


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    schema.upgrade(eng)
    yield eng
    eng.dispose()


_STOPPING: list[threading.Thread] = []


def stop_in_background(srv: MailServers) -> None:
    """Stop test mail servers without waiting: Dovecot takes about a second to stop, and the
    next test has servers of its own (other ports, another directory). The session waits for
    every stop at its end."""
    stop = threading.Thread(target=srv.stop, name="stop-mail-servers", daemon=True)
    stop.start()
    _STOPPING.append(stop)


def pytest_sessionfinish(session, exitstatus):
    for stop in _STOPPING:
        stop.join(timeout=30)


@pytest.fixture
def servers():
    """Dovecot and the SMTP relay, fresh for each test."""
    srv = MailServers().start()
    try:
        yield srv
    finally:
        stop_in_background(srv)


@pytest.fixture
def make_settings(tmp_path, db_url, engine, monkeypatch):
    """Settings for the test servers (schema already migrated); keyword overrides go into the config."""
    monkeypatch.setenv(PASSWORD_ENV, "secret")

    def build(srv: MailServers, boxes=("skxkpb", "skxxhb", "skxdxb"), **over) -> Settings:
        data = {
            "storage": str(tmp_path / "storage"),
            "database_url": db_url,
            "mailboxes": [{"name": n, "host": srv.host, "port": srv.imap_port, "tls": "plain",
                           "user": n, "password_env": PASSWORD_ENV, "timeout": 10,
                           "address": srv.address(n), "smtp_host": srv.host, "smtp_port": srv.smtp_port,
                           "smtp_tls": "plain", "smtp_auth": False} for n in boxes],
            "organisation": "临沂市科协",
            "mail_domain": "ly.example.test",
            "units": TEST_UNITS,
            "routing": TEST_ROUTING,
            "departments": [{**d, "mailbox": d["mailbox"] if d["mailbox"] in boxes else None} for d in (
                {"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb"},
                {"key": "xuehui", "name": "学会部", "prefix": "XH", "mailbox": "skxxhb"},
                {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb"})],
            "reconnect_initial": 0.2, "reconnect_max": 2, "poll_interval": 1,
        }
        data.update(over)
        return Settings.model_validate(data)

    return build


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a YAML file, for tests that run the real CLI."""
    import yaml

    data = settings.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def mailbot_cmd() -> list[str]:
    return [sys.executable, "-m", "mailbot"]


def mailbot_main(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`mailbot ARGS` as an operator types it, run in this process: through the real entry
    point `main()` (MAILBOT_NOW, failures as one Chinese line and an exit code), with typer's
    CliRunner isolating stdin/stdout/stderr and the environment overrides in `env` (a None
    value unsets). Like a child process it gets its own clock, loaded from MAILBOT_NOW, and
    the databases it opens are closed afterwards. A start of Python costs about a second here;
    tests about the process itself (signals, the daemon and `run --once`, the console script)
    still start one with mailbot_cmd()."""
    from contextlib import ExitStack, chdir
    from unittest import mock

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from typer.testing import CliRunner

    from mailbot.runtime.cli import main

    args = [str(a) for a in args]
    opened: set[Engine] = set()

    def opening(conn) -> None:
        opened.add(conn.engine)

    with ExitStack() as stack:
        out, err, _ = stack.enter_context(CliRunner().isolation(env={"MAILBOT_DEBUG": None, **(env or {})}))
        stack.enter_context(mock.patch.object(sys, "argv", ["mailbot", *args]))
        stack.enter_context(mock.patch.object(clock, "CLOCK", clock.Clock()))  # as fresh as a child's
        try:  # usage lines name the program as the console script does (typer's vendored click)
            import typer._click.utils as click_utils

            stack.enter_context(mock.patch.object(click_utils, "_detect_program_name", lambda *a, **k: "mailbot"))
        except (ImportError, AttributeError):
            pass
        if cwd is not None:
            stack.enter_context(chdir(cwd))
        event.listen(Engine, "engine_connect", opening)
        stack.callback(lambda: [engine.dispose() for engine in opened])
        stack.callback(event.remove, Engine, "engine_connect", opening)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8", "replace")
    assert "Traceback" not in stdout + stderr, stderr
    return subprocess.CompletedProcess(["mailbot", *args], code, stdout, stderr)
