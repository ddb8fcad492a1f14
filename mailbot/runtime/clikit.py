"""What every command of the CLI shares: the consoles, the --config option, loading settings."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="配置文件（默认 $MAILBOT_CONFIG 或 config/mailbot.yaml）")
JsonOpt = typer.Option(False, "--json", help="输出 JSON（UTF-8），供其他程序读取")


def config_path(path: Path | None) -> Path:
    return path or Path(os.environ.get("MAILBOT_CONFIG", "config/mailbot.yaml"))


def settings(path: Path | None, check_secrets: bool = False):
    from mailbot.config import load

    return load(config_path(path), check_secrets=check_secrets)


def database(settings):
    """The engine of the configured database, its schema checked (SQLite upgrades itself)."""
    from mailbot.store import make_engine, schema

    settings.storage.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    schema.ensure_current(engine, auto_upgrade_sqlite=True)
    return engine
