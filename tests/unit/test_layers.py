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
