"""Database schema management: Alembic upgrade and the check that the schema is current.

The daemon and the demo upgrade an embedded SQLite database themselves; on PostgreSQL
they refuse to run on an out-of-date schema and say which command to run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database schema is behind the code's migrations."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_current(engine: Engine, auto_upgrade_sqlite: bool = True) -> None:
    """Upgrade an embedded SQLite database; refuse an out-of-date server database."""
    if current_revision(engine) == head_revision():
        return
    if engine.dialect.name == "sqlite" and auto_upgrade_sqlite:
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"数据库结构不是最新（当前 {current_revision(engine) or '空'}，需要 {head_revision()}）。"
        "请先运行：mailbot db upgrade")
