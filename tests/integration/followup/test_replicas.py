"""Three scheduler replicas on one real MongoDB and Kafka: every timer fires once, even when one dies mid-fire.

The replicas are three ``TimerScheduler`` instances in-process, each with its own lease-owner id, sweeping the
same ``timers`` collection at the same injected time. A replica "killed" mid-fire is one that claimed a timer and
published its event, then never marked it fired.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from schemas import followup_event_adapter, followup_event_id
from services.followup.domain.policy import FollowupPolicy
from services.followup.ports import ClaimedTimer
from services.followup.review_views import ReviewViewRepository
from services.followup.scheduler import Publish, TimerScheduler, kafka_publisher
from services.followup.timers_store import TimerRepository
from services.followup.tracker import ReviewTracker
from tests.conftest import Servers
from tests.support.kafka import create_topics, read_to_end
from tests.support.mongo import scratch_database
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=60)


@pytest.fixture
async def database(servers: Servers, unique: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        yield db


@pytest.fixture
async def broker(servers: Servers) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(servers.kafka_bootstrap, acks="all", enable_idempotence=True)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def track_reviews(db: AsyncDatabase[dict[str, Any]], count: int) -> TimerRepository:
    """``count`` open reviews due on day 7: 5 timers each (2 reminders, overdue, 2 escalations)."""
    timers = TimerRepository(db)
    views = ReviewViewRepository(db)
    await timers.ensure_indexes()
    tracker = ReviewTracker(views, timers, FollowupPolicy())
    for number in range(count):
        await tracker.track(ReviewStory(f"r-{number}").opened(at=T0, due_at=T0 + 7 * DAY))
    return timers


def replica(timers: TimerRepository, name: str, publish: Publish) -> TimerScheduler:
    return TimerScheduler(timers, publish, replica_id=name, lease=LEASE, batch_size=1_000)


async def test_three_replicas_fire_every_timer_exactly_once(
    database: AsyncDatabase[dict[str, Any]], broker: KafkaBroker, servers: Servers, unique: str
) -> None:
    topic = f"followups.events.{unique}"
    await create_topics(servers.kafka_bootstrap, topic)
    timers = await track_reviews(database, 8)
    publish = kafka_publisher(broker, topic)
    replicas = [replica(timers, f"replica-{n}", publish) for n in range(3)]

    fired = []
    for moment in (5 * DAY, 6 * DAY, 7 * DAY, 9 * DAY, 14 * DAY):  # each review's reminders, overdue, escalations
        fired += await asyncio.gather(*(r.sweep_once(T0 + moment) for r in replicas))
    again = await asyncio.gather(*(r.sweep_once(T0 + 60 * DAY) for r in replicas))

    fired_ids = [timer.timer_id for batch in fired for timer in batch]
    assert len(fired_ids) == 40
    assert len(set(fired_ids)) == 40
    assert again == [[], [], []]
    records = await read_to_end(servers.kafka_bootstrap, topic)
    assert len(records) == 40
    assert Counter(record.headers["event-id"] for record in records).most_common(1)[0][1] == 1
    stored = await timers.timers.find({}).to_list()
    assert {doc["_id"] for doc in stored if doc["fired_at"] is not None} == set(fired_ids)
    assert {doc["fired_by"] for doc in stored} <= {"replica-0", "replica-1", "replica-2"}
    assert sum(1 for batch in fired if batch) >= 2  # they really competed for the same timers


async def test_a_replica_killed_after_publishing_is_taken_over_with_the_same_event_id(
    database: AsyncDatabase[dict[str, Any]], broker: KafkaBroker, servers: Servers, unique: str
) -> None:
    topic = f"followups.events.{unique}"
    await create_topics(servers.kafka_bootstrap, topic)
    timers = await track_reviews(database, 1)
    publish = kafka_publisher(broker, topic)
    doomed, second, third = (replica(timers, name, publish) for name in ("doomed", "second", "third"))

    now = T0 + 5 * DAY  # only the 2-days-before reminder is due
    claimed = await doomed.claim_next(now)
    assert claimed is not None
    await doomed.publish(claimed)
    # ... and the replica dies here, before marking the timer fired.

    assert await second.sweep_once(now) == []  # its lease still holds
    assert await second.sweep_once(now + LEASE - timedelta(seconds=1)) == []
    taken_over = await third.sweep_once(now + LEASE)
    assert [timer.timer_id for timer in taken_over] == [claimed.timer_id]
    assert taken_over[0].attempts == 2
    assert await doomed.mark_fired(claimed, now + LEASE) is False  # too late: it lost the lease
    assert await second.sweep_once(now + 2 * LEASE) == []

    records = await read_to_end(servers.kafka_bootstrap, topic)
    assert len(records) == 2
    assert records[0].value == records[1].value  # the very same event, published twice
    event = followup_event_adapter.validate_json(records[0].value)
    assert event.event_id == followup_event_id(claimed.timer_id)
    stored = await timers.timers.find_one({"_id": claimed.timer_id})
    assert stored is not None
    assert stored["fired_by"] == "third"


async def test_a_failed_publish_gives_the_lease_back_for_the_next_sweep(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    timers = await track_reviews(database, 1)
    published: list[ClaimedTimer] = []

    async def broken(_: ClaimedTimer) -> None:
        raise ConnectionError("Kafka is unreachable")

    async def working(timer: ClaimedTimer) -> None:
        published.append(timer)

    now = T0 + 5 * DAY
    with pytest.raises(ConnectionError):
        await replica(timers, "unlucky", broken).sweep_once(now)
    fired = await replica(timers, "next", working).sweep_once(now)  # no need to wait for the lease
    assert [timer.timer_id for timer in fired] == [timer.timer_id for timer in published]
    assert len(fired) == 1


async def test_timers_whose_moment_passed_unfired_are_dropped_unsent(database: AsyncDatabase[dict[str, Any]]) -> None:
    timers = await track_reviews(database, 1)
    published: list[ClaimedTimer] = []

    async def publish(timer: ClaimedTimer) -> None:
        published.append(timer)

    # Follow-up was down from before the first reminder until after the last escalation.
    fired = await replica(timers, "back-again", publish).sweep_once(T0 + 20 * DAY)
    assert [timer.kind for timer in fired] == ["overdue", "escalation"]
    assert [timer.level for timer in fired] == [0, 2]
    assert fired == published
    skipped = await timers.timers.find({"skipped": True}).sort("due_at").to_list()
    assert [(doc["kind"], doc["level"]) for doc in skipped] == [("reminder", 0), ("reminder", 0), ("escalation", 1)]
