"""What filing does once per batch instead of once per message, on the backend under test
(SQLite, or PostgreSQL with MAILBOT_TEST_DATABASE_URL): tracking numbers reserved with one
UPDATE … RETURNING per batch, and the receipts' daily cap counted with one query per batch."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from mailbot import clock, filing, outbox
from mailbot.config import Outbox
from mailbot.store import Event, OutboxMessage, TrackingCounter

pytestmark = pytest.mark.integration


def counter(engine, prefix="KP", year=2026) -> int:
    with Session(engine) as session:
        return session.exec(select(TrackingCounter.value).where(TrackingCounter.prefix == prefix,
                                                                TrackingCounter.year == year)).one()


def test_batches_reserving_at_once_get_distinct_consecutive_numbers(engine):
    """Eight workers at once, each a batch that reserves 5 and uses some (the rest handed
    back), or takes numbers one by one: every number once, none skipped."""
    got: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def batch(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                with Session(engine) as session:
                    if worker % 2:
                        filing.reserve_tracking(session, {("KP", 2026): 5})
                    numbers = [filing.allocate_tracking(session, "KP", 2026) for _ in range(1 + (worker + round_) % 5)]
                    filing.release_tracking(session)
                    session.commit()
                got.extend(numbers)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=batch, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(got) == len(set(got))
    assert sorted(int(n.rsplit("-", 1)[1]) for n in got) == list(range(1, len(got) + 1))
    assert counter(engine) == len(got)


def test_a_batch_gives_back_the_numbers_it_did_not_use(engine):
    with Session(engine) as session:
        filing.reserve_tracking(session, {("KP", 2026): 5, ("XH", 2026): 2})
        assert [filing.allocate_tracking(session, "KP", 2026) for _ in range(2)] == ["KP-2026-0001", "KP-2026-0002"]
        assert filing.allocate_tracking(session, "XH", 2026) == "XH-2026-0001"
        filing.release_tracking(session)
        session.commit()
    assert (counter(engine, "KP"), counter(engine, "XH")) == (2, 1)
    with Session(engine) as session:
        filing.reserve_tracking(session, {("KP", 2026): 1})
        # more than reserved: the next numbers come one at a time, still in order
        assert [filing.allocate_tracking(session, "KP", 2026) for _ in range(3)] == [
            "KP-2026-0003", "KP-2026-0004", "KP-2026-0005"]
        filing.release_tracking(session)
        session.commit()
    assert counter(engine, "KP") == 5


def letter(to: str, n: int, kind: str = "receipt") -> outbox.Outgoing:
    now = clock.now()
    return outbox.Outgoing(kind=kind, mailbox="skxkpb", from_name="科普部", from_address="skxkpb@example.test",
                           to_name="", to_address=to, subject=f"回执 {n}", text="您好\n", html=None,
                           message_id=f"<mailbot.{kind}.t{n}.{n:016x}@example.test>", date=now)


def queue(engine, letters, counted: bool) -> list:
    """Queue letters in one transaction, with the batch's one count query or without."""
    cfg, now = Outbox(daily_cap_per_sender=3), clock.now()
    with Session(engine) as session:
        if counted:
            outbox.count_recent(session, [o.to_address for o in letters], now)
        out = [outbox.enqueue(session, o, cfg, now) is not None for o in letters]
        session.commit()
    return out


@pytest.mark.parametrize("counted", [True, False], ids=["counted per batch", "counted per letter"])
def test_the_daily_cap_counted_per_batch_caps_as_before(engine, counted):
    now = clock.now()
    with Session(engine) as session:  # yesterday's mail: one inside the 24 hours, one just outside
        for n, age in ((100, timedelta(hours=23)), (101, timedelta(hours=24, minutes=1))):
            o = letter("Flood@Example.test", n)
            session.add(OutboxMessage(kind="receipt", mailbox="skxkpb", to_address=o.to_address.lower(),
                                      subject=o.subject, message_id=o.message_id, raw=b"x", status="sent",
                                      give_up_at=now, created_at=now - age))
        session.commit()
    letters = [letter("flood@example.test", 1), letter("FLOOD@example.test", 2, kind="review-request"),
               letter("flood@example.test", 3), letter("other@example.test", 4), letter("flood@example.test", 5),
               letter("flood@example.test", 6, kind="review-request")]
    # 1 in the last 24 h, +1 receipt = 2, +1 uncapped kind = 3: the next receipt is over the cap;
    # the uncapped kind is still queued
    assert queue(engine, letters, counted) == [True, True, False, True, False, True]
    with Session(engine) as session:
        caps = session.exec(select(Event).where(Event.kind == "outbox-cap")).all()
        assert len(caps) == 2 and all("3 in 24 h" in e.detail for e in caps)
    # the next batch sees this one's rows
    assert queue(engine, [letter("flood@example.test", 7), letter("other@example.test", 8)], counted) == [False, True]
