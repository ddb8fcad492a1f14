"""The shape of the package: imports point down the mail's path (import-linter contracts in
pyproject.toml, run here, and shown to fail on a forbidden import), the digest's pure part
imports no I/O, and only mailbot.clock reads the wall clock."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PKG = ROOT / "mailbot"
LINT = Path(sys.executable).parent / "lint-imports"
IO = {"mailbot.store", "mailbot.ingest", "mailbot.pipeline", "mailbot.runtime", "mailbot.outbox", "imapclient",
      "aiosmtplib", "sqlmodel", "sqlalchemy", "apscheduler"}


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


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_digests_content_is_pure():
    """mailbot/digest/__init__.py (periods, content, chart, workbook) sits beside its SQL and
    sending modules, which the package-wide contracts cannot tell apart."""
    names = imports(PKG / "digest" / "__init__.py")
    assert not {n for n in names if any(n == f or n.startswith(f + ".") for f in IO)}


WALL_CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time"),
              ("datetime", "today"), ("time", "localtime"), ("time", "gmtime"), ("utils", "formatdate")}


def wall_clock_reads(path: Path) -> list[str]:
    """Calls like datetime.now(), date.today(), time.time() (time.monotonic() measures, it is no date)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.func.attr) in WALL_CLOCK:
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {name}.{node.func.attr}()")
    return found


def test_only_the_clock_reads_the_wall_clock():
    reads = [r for path in sorted(PKG.rglob("*.py")) if path.name != "clock.py" for r in wall_clock_reads(path)]
    assert reads == [], "read the time from mailbot.clock instead: " + ", ".join(reads)
    assert wall_clock_reads(PKG / "clock.py")  # and the clock itself is found by this check
