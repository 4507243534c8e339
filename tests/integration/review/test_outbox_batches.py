"""The relay publishes a batch of entries at once without ever reordering the events of one review.

Different reviews' entries are in flight together; one review's go one after the other, each only once Kafka
acknowledged the one before. A pass costs a lease, a query and a mark, however many entries it sends.
"""

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from schemas import review_event_adapter
from services.review.domain.editing import SectionEdit
from services.review.outbox import OutboxRelay
from services.review.ports import OutboxEvent
from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.integration.review.conftest import ReviewApp, incident
from tests.support.kafka import read_to_end

pytestmark = pytest.mark.integration

REVIEWS = 6
EDITS = 2  # each review: ReviewOpened (1), then ReviewUpdated (2) and (3)


async def open_and_edit(app: ReviewApp, prefix: str, count: int = REVIEWS) -> list[str]:
    ids = []
    for number in range(count):
        review = await app.open(incident(f"{prefix}-{number}"))
        for version in range(1, EDITS + 1):
            await app.service.edit_sections(review.id, version, SectionEdit(owner=f"owner-{version}"), "erin")
        ids.append(review.id)
    return ids


def count_calls(repository: ReviewRepository, name: str, calls: dict[str, int]) -> None:
    method: Callable[..., Awaitable[Any]] = getattr(repository, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return await method(*args, **kwargs)

    setattr(repository, name, counted)


class RecordingPublisher:
    """Acknowledges after a random delay, so that entries of different reviews overtake each other."""

    def __init__(self, seed: int = 7) -> None:
        self.published: list[OutboxEvent] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_once: set[str] = set()
        self._random = random.Random(seed)

    async def __call__(self, event: OutboxEvent) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self._random.uniform(0, 0.02))
            if event.event_id in self.fail_once:
                self.fail_once.discard(event.event_id)
                raise ConnectionError("Kafka did not acknowledge")
            self.published.append(event)
        finally:
            self.in_flight -= 1

    def versions_by_review(self) -> dict[str, list[int]]:
        versions: dict[str, list[int]] = defaultdict(list)
        for event in self.published:
            versions[event.key].append(review_event_adapter.validate_json(event.payload).version)
        return dict(versions)


@pytest.mark.parametrize("batch_size", [100, 7])
async def test_a_pass_sends_reviews_side_by_side_each_in_order_with_three_round_trips_per_batch(
    make_review_app: Any, batch_size: int
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        ids = await open_and_edit(app, "SIDE")
        calls: dict[str, int] = defaultdict(int)
        for name in ("hold_relay_lease", "unsent", "mark_sent"):
            count_calls(app.repository, name, calls)
        publish = RecordingPublisher()
        relay = OutboxRelay(app.repository, publish, app.clock, poll_seconds=1.0, batch_size=batch_size)

        assert await relay.relay_once() == REVIEWS * (EDITS + 1)
        assert await app.repository.pending_count() == 0

    assert publish.versions_by_review() == {review_id: [1, 2, 3] for review_id in ids}
    assert publish.most_in_flight > 1  # different reviews were in flight together
    if batch_size >= REVIEWS * (EDITS + 1):
        # Drained in one batch: one lease, one query, one mark; no second query to learn that nothing is left.
        assert calls == {"hold_relay_lease": 1, "unsent": 1, "mark_sent": 1}
    else:
        batches = -(-REVIEWS * (EDITS + 1) // batch_size)  # the last one short: 18 entries by 7 = 7, 7, 4
        assert calls == {"hold_relay_lease": batches, "unsent": batches, "mark_sent": batches}


async def test_a_failed_publish_holds_back_the_rest_of_that_review_only(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        unlucky, *others = await open_and_edit(app, "FAIL", count=3)
        events = await app.events(unlucky)
        publish = RecordingPublisher()
        publish.fail_once.add(str(events[1].event_id))  # the unlucky review's version 2
        relay = OutboxRelay(app.repository, publish, app.clock, poll_seconds=1.0, batch_size=100)

        with pytest.raises(ConnectionError):
            await relay.relay_once()
        first_pass = publish.versions_by_review()
        # What was acknowledged is marked sent; the unlucky review's versions 2 and 3 wait, in order.
        pending = await app.db.review_outbox.find({"sent_at": None}).to_list()
        assert sorted(doc["version"] for doc in pending) == [2, 3]
        assert {doc["key"] for doc in pending} == {unlucky}
        assert await relay.relay_once() == 2

    assert first_pass == {unlucky: [1], **{review_id: [1, 2, 3] for review_id in others}}
    assert publish.versions_by_review() == {unlucky: [1, 2, 3], **{review_id: [1, 2, 3] for review_id in others}}


async def test_events_of_many_reviews_reach_the_topic_in_order_per_review(
    make_review_app: Any, servers: Servers
) -> None:
    """Through the real producer: one pass, 20 reviews in flight together, each review's events in order."""
    async with make_review_app(with_kafka=True, outbox_wake_on_write=False, outbox_poll_seconds=3600) as review_app:
        app: ReviewApp = review_app
        ids = await open_and_edit(app, "KAFKA", count=20)
        relay: OutboxRelay = app.app.state.review_relay
        # The app's own relay task makes one pass at start-up and may already have sent an early entry, so count
        # what reached the topic rather than what this pass sent.
        assert await relay.relay_once() <= 60
        assert await app.repository.pending_count() == 0
        records = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

    # Should that start-up pass and this one overlap, an entry may go out twice with the same event id (the
    # outbox's at-least-once): order is judged on each event's first appearance.
    versions: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record in records:  # per partition in offset order, so per review in the order they reached the topic
        assert record.key is not None
        event = review_event_adapter.validate_json(record.value)
        if str(event.event_id) not in seen:
            seen.add(str(event.event_id))
            versions[record.key.decode()].append(event.version)
    assert len(seen) == 60
    assert dict(versions) == {review_id: [1, 2, 3] for review_id in ids}
