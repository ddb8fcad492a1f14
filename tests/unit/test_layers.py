"""The pure core (parse, charset, sniff, models, routing, review) imports no I/O layer:
it can be tested with no server, database or clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[2] / "mailbot"
CORE = ["models", "charset", "sniff", "parse", "routing", "review", "quotes", "workdays", "deadlines", "digest"]
FORBIDDEN = {"mailbot.store", "mailbot.ingest", "mailbot.pipeline", "mailbot.daemon", "mailbot.cli",
             "mailbot.schema", "imapclient", "aiosmtplib", "sqlmodel", "sqlalchemy", "apscheduler"}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.add(f"mailbot.{base}" if node.level else base)
            found |= {f"mailbot.{a.name}" for a in node.names if node.level and not base}
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io_layer(module):
    names = imports(PKG / f"{module}.py")
    bad = {n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{module} imports {bad}"


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
