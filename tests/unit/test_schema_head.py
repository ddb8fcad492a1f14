"""store.schema.HEAD, what every start compares the database with, is Alembic's head: a new
migration without HEAD moved to it fails here (the robot would upgrade on every start)."""

from __future__ import annotations

from mailbot.store import schema


def test_head_constant_is_the_newest_migration():
    assert schema.HEAD == schema.head_revision()
