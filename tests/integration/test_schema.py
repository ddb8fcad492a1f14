"""The Alembic migrations build exactly the schema the models describe, on SQLite and on
PostgreSQL; APScheduler's old job table is gone, the scheduler's heartbeat is in."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from mailbot import store  # noqa: F401  (store registers the tables)
from mailbot.store import schema

pytestmark = pytest.mark.integration


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_object": lambda obj, name, kind, reflected, other: not (kind == "table" and name == "alembic_version")})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == [], diff


def test_the_schema_is_at_head_with_the_heartbeat_and_without_the_job_store(engine):
    assert schema.current_revision(engine) == schema.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert "scheduler_job" in tables and "apscheduler_jobs" not in tables
