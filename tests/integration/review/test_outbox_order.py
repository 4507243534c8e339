"""The relay reads its batches in sending order at the cost of a batch, not of the backlog, on the real server.

Each entry carries one order key (``domain/outbox_order.py``) indexed with ``sent_at``. SecantusDB reads every entry
of an index range before it applies a limit, so behind a full batch the relay bounds its next read by where that
batch probably ends; these tests check with ``explain`` what that read examines, that the answer is still exactly the
oldest entries, and that entries written before the key existed (a rolling deploy) go out in their order.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.review.domain.outbox_order import order_key, window_end
from services.review.outbox import OutboxRelay
from services.review.ports import OutboxEntry, OutboxEvent
from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.support.explain import SentQueries, explained, index_keys
from tests.support.mongo import scratch_database

pytestmark = pytest.mark.integration

BACKLOG = 5000
LIMIT = 100
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def entry(
    review: str, version: int, seq: int, created_at: datetime, *, keyed: bool = True, grouped: bool = True
) -> dict[str, Any]:
    """An outbox document of one event as the repository writes it; ``grouped=False``: as a version before grouping
    wrote it (the event at the top level); ``keyed=False``: as a version before the order key (and grouping)."""
    event_id = str(uuid.uuid4())
    document: dict[str, Any] = {
        "_id": event_id,
        "topic": "reviews.events",
        "key": review,
        "version": version,
        "seq": seq,
        "created_at": created_at,
        "sent_at": None,
    }
    if keyed and grouped:
        event = {"event_id": event_id, "event_type": "ReviewUpdated", "payload": "{}", "version": version}
        document["events"] = [event]
    else:
        document |= {"event_type": "ReviewUpdated", "payload": "{}"}
    if keyed:
        document["order"] = order_key(created_at, version, seq, event_id)
    return document


def in_tuple_order(documents: list[dict[str, Any]]) -> list[str]:
    return [d["_id"] for d in sorted(documents, key=lambda d: (d["created_at"], d["version"], d["seq"], d["_id"]))]


def outbox_database(servers: Servers, unique: str) -> Any:
    return scratch_database(servers.mongodb_uri, f"outbox_order_{unique}")


async def test_a_read_behind_a_full_batch_examines_about_a_batch_of_a_5000_entry_backlog(
    servers: Servers, unique: str
) -> None:
    async with outbox_database(servers, unique) as db:
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        # A storm's backlog: an entry a millisecond, 50 reviews interleaved.
        backlog = [entry(f"R-{n % 50}", 1 + n // 50, 0, START + timedelta(milliseconds=n)) for n in range(BACKLOG)]
        for start in range(0, BACKLOG, 1000):
            await db.review_outbox.insert_many(backlog[start : start + 1000])
        expected = in_tuple_order(backlog)

        first = await repository.unsent(LIMIT)
        assert [e.entry_id for e in first] == expected[:LIMIT]
        await repository.mark_sent([e.entry_id for e in first], START)

        sent = SentQueries()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            servers.mongodb_uri, tz_aware=True, event_listeners=[sent]
        )
        try:
            watched = ReviewRepository(client[db.name])
            second = await watched.unsent(LIMIT, ends_before=window_end(first[0].order, first[-1].order))
        finally:
            await client.close()
        examined = 0
        for command in sent.commands:
            plan, docs_examined = await explained(db, command)
            assert index_keys(plan) == ["sent_at", "order"]
            examined += docs_examined

    assert [e.entry_id for e in second] == expected[LIMIT : 2 * LIMIT]
    # About two batches (the window is twice the last batch's span), never the 4,900 entries left.
    assert examined <= 3 * LIMIT, f"{examined} entries examined for a batch of {LIMIT}"


async def test_a_window_holding_too_few_entries_still_answers_the_oldest_batch(servers: Servers, unique: str) -> None:
    async with outbox_database(servers, unique) as db:
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        documents = [entry(f"R-{n % 7}", 1 + n // 7, n % 2, START + timedelta(seconds=n)) for n in range(30)]
        await db.review_outbox.insert_many(documents)
        bound = order_key(START + timedelta(seconds=4), 0, 0, "")  # 4 entries older than it

        batch = await repository.unsent(10, ends_before=bound)

    assert [e.entry_id for e in batch] == in_tuple_order(documents)[:10]


class Recorder:
    def __init__(self) -> None:
        self.published: list[OutboxEvent] = []

    async def __call__(self, event: OutboxEvent) -> None:
        self.published.append(event)


async def relay_everything(db: AsyncDatabase[dict[str, Any]], batch_size: int) -> list[str]:
    """The entries the relay read, batch after batch, in the order it read them (it publishes each batch's
    reviews side by side, so their publication order across reviews is not the sending order)."""
    repository = ReviewRepository(db)
    read: list[str] = []
    unsent = repository.unsent

    async def recording_unsent(limit: int, *, ends_before: str | None = None) -> list[OutboxEntry]:
        batch = await unsent(limit, ends_before=ends_before)
        read.extend(e.entry_id for e in batch)
        return batch

    repository.unsent = recording_unsent  # type: ignore[method-assign]
    publish = Recorder()
    relay = OutboxRelay(repository, publish, lambda: START, poll_seconds=1.0, batch_size=batch_size)
    await relay.relay_once()
    assert await repository.pending_count() == 0
    assert sorted(e.event_id for e in publish.published) == sorted(read)
    return read


@pytest.mark.parametrize("batch_size", [100, 4])
async def test_entries_written_before_the_order_key_go_out_in_their_order_among_the_new_ones(
    servers: Servers, unique: str, batch_size: int
) -> None:
    """A rolling deploy: old replicas write entries without a key (or keyed, one event each) while new ones write
    grouped entries, even for consecutive versions of one review. Everything goes out in (created_at, version, seq,
    _id) order."""
    async with outbox_database(servers, unique) as db:
        await ReviewRepository(db).ensure_indexes()
        documents = [
            entry(f"R-{n % 3}", 1 + n // 3, 0, START + timedelta(milliseconds=n), keyed=n % 2 == 0, grouped=n % 4 == 0)
            for n in range(24)
        ]
        # Two events of one transaction and one millisecond, the later written by an old replica.
        moment = START + timedelta(milliseconds=5)
        documents += [entry("R-9", 1, 0, moment), entry("R-9", 1, 1, moment, keyed=False)]
        await db.review_outbox.insert_many(documents)

        published = await relay_everything(db, batch_size)

        assert published == in_tuple_order(documents)
        assert await db.review_outbox.count_documents({"order": None}) == 0  # keyed on the way


async def test_an_unkeyed_entry_is_not_skipped_by_a_read_bounded_by_an_order_key(servers: Servers, unique: str) -> None:
    """Null sorts before every key, and a bound on the key (``$lt``) matches strings only: the bounded read keys
    the unkeyed entries first, so an old replica's entry does not wait behind the new ones of its review."""
    async with outbox_database(servers, unique) as db:
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        old = entry("R-1", 1, 0, START, keyed=False)
        new = [entry("R-1", 2 + n, 0, START + timedelta(milliseconds=1 + n)) for n in range(5)]
        await db.review_outbox.insert_many([old, *new])

        batch = await repository.unsent(3, ends_before=order_key(START + timedelta(milliseconds=3), 0, 0, ""))

    assert [e.entry_id for e in batch] == [old["_id"], new[0]["_id"], new[1]["_id"]]
