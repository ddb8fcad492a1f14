"""The daemon's log as an operator reads it: `--log-format json` gives one JSON object per line
with the zone stated; in the steady state (mailboxes idle, jobs running every second) INFO
stays quiet, though the scheduler's jobs keep running and beating."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import pytest
from conftest import PASSWORD_ENV, mailbot_cmd, write_config
from sqlmodel import Session, select

from mailbot.config import Logging
from mailbot.runtime import logs
from mailbot.store import SchedulerJob

pytestmark = pytest.mark.integration


def run_daemon(settings, tmp_path, *args, seconds: float = 6.0) -> list[str]:
    """`mailbot run ARGS` for `seconds` after the readers connected, then SIGTERM: its log lines."""
    config = write_config(settings, tmp_path / "mailbot.yaml")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*mailbot_cmd(), "run", *args, "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, PASSWORD_ENV: "secret"})
        try:
            deadline = time.monotonic() + 30
            while log_path.read_text(errors="replace").count(": connected") < len(settings.mailboxes):
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.05)
            time.sleep(seconds)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log_path.read_text(errors="replace")
    return log_path.read_text("utf-8").splitlines()


def test_json_log_parses_and_steady_state_is_quiet(servers, make_settings, engine, tmp_path):
    settings = make_settings(servers, boxes=("skxkpb", "skxxhb"), poll_interval=1,
                             logging={"timezone": "office"})
    lines = run_daemon(settings, tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(r["time"].endswith("+08:00") and r["tz"] == "Asia/Shanghai" for r in records)
    assert {"time", "tz", "level", "logger", "message"} <= set(records[0])
    messages = [r["message"] for r in records if r["level"] == "INFO"]
    assert messages[0].startswith("mailbot started") and messages[-1].startswith("mailbot stopped")
    connected = max(i for i, m in enumerate(messages) if m.endswith(": connected"))
    # after the start-up lines (leases, connections) only the stop: nothing per job run though
    # mailbox-poll ran every second for 6 seconds
    assert messages[connected + 1:] == messages[-1:], messages
    assert len(messages) <= 8, messages
    assert not [r for r in records if r["logger"].startswith("apscheduler") and r["level"] in ("INFO", "DEBUG")]
    with Session(engine) as session:  # the scheduler did start its jobs (their runs: the DEBUG test below)
        assert session.get(SchedulerJob, "mailbox-poll").next_run_at is not None


def test_debug_level_shows_each_job_run(servers, make_settings, engine, tmp_path):
    settings = make_settings(servers, boxes=("skxkpb",), poll_interval=1, logging={"level": "DEBUG"})
    lines = run_daemon(settings, tmp_path, seconds=2.5)
    runs = [line for line in lines if "apscheduler" in line and "轮询邮箱" in line and "executed successfully" in line]
    assert len(runs) >= 2, lines  # mailbox-poll every second, each run logged at DEBUG
    assert lines[0][:4].isdigit() and lines[0][23:29] == "+00:00"  # text format, UTC stated


CASES = [  # (logging section, format override, office zone) -> timestamp suffix, zone field
    ({}, None, "Asia/Shanghai", "+00:00", None),
    ({"timezone": "office"}, None, "Asia/Shanghai", "+08:00", None),
    ({"format": "json"}, None, "Asia/Shanghai", "+00:00", "UTC"),
    ({"timezone": "office"}, "json", "Asia/Urumqi", "+06:00", "Asia/Urumqi"),
]


@pytest.mark.parametrize("section, fmt, zone, suffix, tz_field", CASES)
def test_timestamps_state_their_zone(section, fmt, zone, suffix, tz_field):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        handler = logs.setup(Logging.model_validate(section), zone, fmt=fmt)
        record = logging.LogRecord("mailbot.test", logging.WARNING, __file__, 1, "邮箱 %s 连接中断", ("skxkpb",), None)
        line = handler.formatter.format(record)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    if tz_field is None:
        assert line.split(" ", 1)[0].endswith(suffix) and line.endswith("WARNING mailbot.test: 邮箱 skxkpb 连接中断")
    else:
        data = json.loads(line)
        assert data["time"].endswith(suffix) and data["tz"] == tz_field and data["message"] == "邮箱 skxkpb 连接中断"
