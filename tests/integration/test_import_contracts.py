"""Imports point down the mail's path: the import-linter contracts in pyproject.toml hold
(`lint-imports`, run as a child process), and they fail on a forbidden import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
PKG = ROOT / "mailbot"
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout


def test_a_forbidden_import_breaks_them(tmp_path):
    """The contracts are real: the routing core importing the database fails the check."""
    shutil.copytree(PKG, tmp_path / "mailbot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    routing = tmp_path / "mailbot" / "routing.py"
    routing.write_text(routing.read_text("utf-8") + "\nfrom mailbot import store  # noqa: E402\n", "utf-8")
    proc = lint(tmp_path)
    assert proc.returncode != 0
    assert "1 broken" in proc.stdout and "mailbot.routing -> mailbot.store" in proc.stdout
