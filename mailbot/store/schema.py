"""Database schema management: Alembic upgrade and the check that the schema is current.

The daemon and the demo upgrade an embedded SQLite database themselves; on PostgreSQL
they refuse to run on an out-of-date schema and say which command to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision. Every start compares the database with it; Alembic (and
# every migration script) is loaded only when they differ. tests/unit/test_schema_head.py
# fails when a migration is added and this is not moved to it.
HEAD = "silence_0011"


class SchemaOutOfDate(RuntimeError):
    """The database schema is behind the code's migrations."""


def alembic_config(url: str) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration, as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _at_head(engine: Engine) -> bool:
    """The database is at HEAD (one plain query, no Alembic)."""
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))] == [HEAD]
    except DBAPIError:  # no version table yet: a new database
        return False


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_current(engine: Engine, auto_upgrade_sqlite: bool = True) -> None:
    """Upgrade an embedded SQLite database; refuse an out-of-date server database."""
    if _at_head(engine) or current_revision(engine) == head_revision():
        return
    if engine.dialect.name == "sqlite" and auto_upgrade_sqlite:
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"数据库结构不是最新（当前 {current_revision(engine) or '空'}，需要 {head_revision()}）。"
        "请先运行：mailbot db upgrade")
