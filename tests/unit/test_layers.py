"""The shape of the package: the digest's pure part imports no I/O, and only mailbot.clock
reads the wall clock. The import-linter contracts in pyproject.toml run in a child process
(`lint-imports`): tests/integration/test_import_contracts.py."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
PKG = ROOT / "mailbot"
IO = {"mailbot.store", "mailbot.ingest", "mailbot.pipeline", "mailbot.runtime", "mailbot.outbox", "imapclient",
      "aiosmtplib", "sqlmodel", "sqlalchemy", "apscheduler"}


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
