"""pipeline.sync._Prefetch, the thread that fetches one batch ahead: batches come in order,
a batch larger than `batch_bytes` is fetched only after the caller stored what it held
(`before_large`, run in the caller's thread), and an error in the thread reaches the caller.
The IMAP calls are replaced by recording functions: this is about the hand-over, not IMAP."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from mailbot import ingest
from mailbot.pipeline import sync

SETTINGS = SimpleNamespace(batch_size=100, batch_bytes=1000)
BOX = SimpleNamespace(name="skxkpb")


def batch(uid: int, size: int) -> ingest.Batch:
    b = ingest.Batch([uid])
    b.size = size
    return b


def run(monkeypatch, sizes: list[int], fail_at: int | None = None) -> list[tuple]:
    events: list[tuple] = []
    lock = threading.Lock()

    def note(*event):
        with lock:
            events.append(event)

    def batches(client, uids, count, max_bytes):
        yield from (batch(uid, size) for uid, size in zip(uids, sizes))

    def fetch(client, box, uidvalidity, uids, failed):
        if uids[0] == fail_at:
            raise ConnectionResetError("the server went away")
        note("fetch", uids[0])
        return [f"message {uids[0]}"]

    monkeypatch.setattr(ingest, "batches", batches)
    monkeypatch.setattr(ingest, "fetch", fetch)
    fetching = sync._Prefetch(None, BOX, 1, list(range(1, len(sizes) + 1)), SETTINGS,
                              before_large=lambda: note("stored", threading.current_thread().name))
    try:
        for got_batch, got, failed in fetching:
            note("got", got_batch[0])
    finally:
        fetching.close()
    return events


def test_batches_arrive_in_order_and_a_large_one_waits_until_the_caller_stored(monkeypatch):
    events = run(monkeypatch, [100, 200, 5000, 300])
    assert [e for e in events if e[0] == "got"] == [("got", 1), ("got", 2), ("got", 3), ("got", 4)]
    stored = events.index(("stored", threading.current_thread().name))  # in the caller's thread
    assert events.index(("got", 2)) < stored < events.index(("fetch", 3))


def test_an_error_in_the_fetching_thread_reaches_the_caller(monkeypatch):
    with pytest.raises(ConnectionResetError):
        run(monkeypatch, [100, 200, 300], fail_at=2)
