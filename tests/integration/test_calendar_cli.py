"""The CLI (its real main(), run in this process) warns when the next 90 days reach a year
whose holidays nobody entered: `check-config`, `status` (tables and --json) and the digest
preview, at a moment set through MAILBOT_NOW; and it stops warning once
config/holidays/<year>.yaml is there."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import mailbot_main

pytestmark = pytest.mark.integration
CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "holidays.yaml").read_text("utf-8"))
WARNING = "2027年的节假日安排尚未录入，提醒按周一至周五计算；请按国务院通知在 {folder}/2027.yaml 中录入。"
DIGEST_LINE = "2027年的节假日安排尚未录入，该年的催办和报表提醒将按周一至周五计算"
NEAR_YEAR_END = "2026-12-20T10:00:00+08:00"


def run_all(commands, now: str) -> list[subprocess.CompletedProcess]:
    """The commands at `now` (MAILBOT_NOW, as an operator's shell would set it)."""
    done = []
    for args in commands:
        proc = mailbot_main(*args, env={"MAILBOT_NOW": now, "MAILBOT_TEST_PW": "secret"})
        assert proc.returncode == 0, (args, proc.stderr)
        done.append(subprocess.CompletedProcess(args, proc.returncode, proc.stdout.replace("\n", ""), proc.stderr))
    return done


@pytest.fixture
def office(tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "holidays"
    folder.mkdir()
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(yaml.safe_dump({
        "storage": str(tmp_path / "storage"), "organisation": "临沂市科协",
        "mailboxes": [{"name": "skxdxb", "host": "imap.example.com", "user": "skxdxb@example.com",
                       "password_env": "MAILBOT_TEST_PW"}],
        "calendar": {"holidays_folder": str(folder)}}, allow_unicode=True), "utf-8")
    return cfg, folder


def commands(cfg: Path, tmp: Path) -> list[tuple]:
    return [("check-config", "--config", cfg), ("status", "--json", "--config", cfg), ("status", "--config", cfg),
            ("digest", "--preview", "-o", tmp / "周报.html", "--config", cfg)]


def test_near_the_year_end_without_next_years_notice_every_view_warns(office, tmp_path):
    cfg, folder = office
    check, as_json, status, _preview = run_all(commands(cfg, tmp_path), NEAR_YEAR_END)
    warning = WARNING.format(folder=folder)
    assert "配置检查通过" in check.stdout and f"注意：{warning}" in check.stdout
    assert f"注意：{warning}" in status.stdout
    assert json.loads(as_json.stdout)["calendar_gaps"] == [
        {"year": 2027, "file": str(folder / "2027.yaml"), "message": warning}]
    assert DIGEST_LINE in (tmp_path / "周报.html").read_text("utf-8")


def test_with_the_notice_entered_nothing_warns(office, tmp_path):
    cfg, folder = office
    (folder / "2027.yaml").write_text(yaml.safe_dump(CASES["notices"]["made-up-2027"], allow_unicode=True), "utf-8")
    check, as_json, status, _preview = run_all(commands(cfg, tmp_path), NEAR_YEAR_END)
    assert f"{folder} 中录入了 2027 年的国务院通知" in check.stdout
    assert "尚未录入" not in check.stdout + status.stdout
    assert json.loads(as_json.stdout)["calendar_gaps"] == []
    assert DIGEST_LINE not in (tmp_path / "周报.html").read_text("utf-8")


def test_far_from_the_year_end_nothing_warns(office, tmp_path):
    cfg, _folder = office
    check, as_json, status, _preview = run_all(commands(cfg, tmp_path), "2026-06-01T10:00:00+08:00")
    assert "尚未录入" not in check.stdout + status.stdout
    assert json.loads(as_json.stdout)["calendar_gaps"] == []
    assert DIGEST_LINE not in (tmp_path / "周报.html").read_text("utf-8")
