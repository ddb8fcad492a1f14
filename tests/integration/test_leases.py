"""Leases between workers on the backend under test (advisory locks on PostgreSQL, file locks on
SQLite): one holder at a time, freed when the holder goes, the connection's loss noticed."""

from __future__ import annotations

import pytest

from mailbot.runtime.leases import Leases

pytestmark = pytest.mark.integration


def test_one_holder_at_a_time_and_handover(engine, tmp_path):
    first, second = Leases(engine, tmp_path), Leases(engine, tmp_path)
    try:
        assert first.take("mailbox:skxkpb") and first.take("mailbox:skxkpb")  # taking again: still ours
        assert not second.take("mailbox:skxkpb")
        assert second.take("mailbox:skxxhb") and not first.take("mailbox:skxxhb")  # names are apart
        first.close()  # the worker exits (or is killed: the server or the kernel frees the same way)
        assert second.take("mailbox:skxkpb") and second.holds("mailbox:skxkpb")
    finally:
        first.close()
        second.close()


def test_a_lost_connection_gives_up_the_leases(engine, tmp_path):
    leases = Leases(engine, tmp_path)
    try:
        assert leases.take("scheduler")
        if engine.dialect.name != "postgresql":
            leases.check()
            assert leases.holds("scheduler")  # file locks live as long as the process
            return
        leases.conn.invalidate()  # the server restarted or the network dropped
        leases.check()
        assert not leases.holds("scheduler")
        assert leases.take("scheduler")  # a new connection takes it again
    finally:
        leases.close()
