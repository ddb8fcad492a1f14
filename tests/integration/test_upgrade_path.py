"""The README's upgrade (backup → stop → install → `mailbot db upgrade` → start) from every
earlier release: a database built at each earlier Alembic revision, with a row in every table
it had then, is migrated to head by `mailbot db upgrade`, keeps every row, and then works
(a new mail is filed). Runs on SQLite and on PostgreSQL (MAILBOT_TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
import secrets
from urllib.parse import quote

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from conftest import PG_URL, mailbot_main, write_config
from sqlalchemy import MetaData, func, insert, inspect, select, text, types
from sqlmodel import Session

from mailbot.runtime import daemon
from mailbot.store import InboundMessage, make_engine, schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MOMENT = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def earlier_revisions() -> list[str]:
    script = ScriptDirectory.from_config(schema.alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions())) if rev.revision != script.get_current_head()]


def migrate_to(engine, revision: str) -> None:
    cfg = schema.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def value_for(column, n: int):
    """A plausible value of the column's type (row n of its table)."""
    kind = column.type
    if isinstance(kind, types.Boolean):
        return False
    if isinstance(kind, (types.Integer, types.Numeric)):
        return n
    if isinstance(kind, types.DateTime):
        return MOMENT
    if isinstance(kind, types.Date):
        return MOMENT.date()
    if isinstance(kind, types.LargeBinary):
        return b"raw"
    if isinstance(kind, types.JSON):
        return {}
    length = getattr(kind, "length", None) or 40
    return f"{column.name}-{n}"[:length]


def fill(engine) -> dict[str, int]:
    """One row in every table of the schema as it is now (parents before children)."""
    meta = MetaData()
    meta.reflect(engine)
    counts = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            row = {}
            for column in table.columns:
                if column.foreign_keys:
                    row[column.name] = 1  # every parent has its row 1
                elif column.primary_key and isinstance(column.type, types.Integer):
                    continue  # the sequence gives 1 in an empty table (and stays in step on PostgreSQL)
                elif not column.nullable and column.server_default is None:
                    row[column.name] = value_for(column, 1)
            conn.execute(insert(table).values(**row))
            counts[table.name] = 1
    return counts


def count_rows(engine, names) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(engine, only=list(names))
    with engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(meta.tables[name])).scalar() for name in names}


@pytest.fixture
def old_db_url(tmp_path):
    """An empty database apart from the fixtures' one (which they bring to head at once)."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"mbu_{secrets.token_hex(6)}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options={quote(f'-csearch_path={name}')}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    admin.dispose()


@pytest.mark.parametrize("revision", earlier_revisions())
def test_upgrade_from_each_earlier_revision(revision, old_db_url, servers, make_settings, tmp_path):
    engine = make_engine(old_db_url)
    migrate_to(engine, revision)
    assert schema.current_revision(engine) == revision
    rows = fill(engine)
    engine.dispose()

    settings = make_settings(servers, boxes=("skxkpb",), database_url=old_db_url)
    config = write_config(settings, tmp_path / "mailbot.yaml")
    done = mailbot_main("db", "upgrade", "--config", config)
    assert done.returncode == 0 and f"{revision} → {schema.head_revision()}" in done.stdout, done.stderr

    engine = make_engine(old_db_url)
    assert schema.current_revision(engine) == schema.head_revision()
    kept = {name: n for name, n in rows.items() if name in inspect(engine).get_table_names()}
    assert count_rows(engine, kept) == kept  # nothing lost on the way (apscheduler_jobs is dropped by 0007)
    assert set(rows) - set(kept) <= {"apscheduler_jobs"}
    engine.dispose()

    rt = daemon.Runtime.build(settings, upgrade_sqlite=False)  # and the robot works on it
    servers.append("skxkpb", NEW_MAIL)
    assert daemon.run_once(rt) == []
    with Session(rt.engine) as s:
        parsed = s.exec(select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "parsed")).one()
    rt.close()
    assert parsed[0] == 1


NEW_MAIL = (b"From: unit1@example.test\r\nTo: skxkpb@example.test\r\nSubject: =?utf-8?b?56eR5pmu5rS75Yqo?=\r\n"
            b"Message-ID: <upgrade@unit.example>\r\n\r\nbody\r\n")
