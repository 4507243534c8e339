"""Follow-up's ``reviews.events`` subscriber on batches, over real Kafka and the MongoDB-compatible server.

A batch is tracked as a whole, each review's events in order, in a few writes; it moves the backlog gauges by what it
changed and counts nothing in MongoDB (counting reads every open review); an unreachable MongoDB mid-batch rewinds it,
and every event still counts once.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from schemas import ActionItemPriority, ReviewStatus, Severity
from services.followup.app import create_app
from services.followup.ports import ViewChange
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings
from tests.conftest import Servers
from tests.integration.followup.support import (
    ManualClock,
    Samples,
    create_followup_topics,
    parts,
    scrape,
    settings_for,
)
from tests.support.kafka import produce_many
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration


def stories(unique: str) -> tuple[list[ReviewStory], list[Any]]:
    """Three reviews, four events each: opened, an item added, moved to in_review, and the item's due date moved."""
    reviews = [ReviewStory(f"r{number}-{unique}") for number in range(3)]
    events: list[Any] = []
    for story in reviews:
        events += [
            story.opened(at=T0, severity=Severity.HIGH, due_at=T0 + 7 * DAY),
            story.item_added(at=T0, item_id="a-1", due_at=T0 + 10 * DAY, priority=ActionItemPriority.HIGH),
            story.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.IN_REVIEW),
            story.item_updated(at=T0 + DAY, item_id="a-1", due_at=T0 + 12 * DAY, changed=("due_at",)),
        ]
    return reviews, events


async def produce(servers: Servers, settings: FollowupSettings, events: list[Any]) -> None:
    records: list[tuple[bytes, bytes | None, Mapping[str, str]]] = [
        (event.model_dump_json().encode(), event.review_id.encode(), {}) for event in events
    ]
    await produce_many(servers.kafka_bootstrap, settings.review_events_topic, records)


def counting(target: object, name: str, calls: list[str], label: str) -> None:
    method: Callable[..., Awaitable[Any]] = getattr(target, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        result = await method(*args, **kwargs)
        calls.append(label)  # once done: a recount is counted once the gauges can show it
        return result

    setattr(target, name, counted)


def backlog_shown(samples: Samples) -> tuple[float, float]:
    """High-severity reviews in review, and high-priority action items open, as the gauges show them."""
    return (
        samples.get(("lessons_reviews_open", (("severity", "high"), ("status", "in_review"))), 0.0),
        samples.get(("lessons_action_items_open", (("priority", "high"),)), 0.0),
    )


def tracked(samples: Samples, outcome: str = "tracked") -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "lessons_review_events_total" and ("outcome", outcome) in labels
    )


async def test_a_batch_is_tracked_as_a_whole_and_moves_the_backlog_gauges_without_counting(
    servers: Servers, unique: str
) -> None:
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    reviews, events = stories(unique)
    await produce(servers, settings, events)  # all there before the consumer starts: batches of several events

    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        app = create_app(
            KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
            MongoSettings(uri=servers.mongodb_uri, database=db.name),
            settings,
            ManualClock(T0 + 2 * DAY),
        )
        followup = parts(app)
        calls: list[str] = []
        counting(followup.tracker, "known", calls, "read")
        counting(followup.tracker, "track_batch", calls, "batch")
        counting(followup.tracker, "track", calls, "event")
        counting(followup.views, "backlog", calls, "recount")
        async with app.router.lifespan_context(app):
            await eventually(lambda: scrape(app), lambda m: tracked(m) == len(events))
            # The gauges follow once the batch is done, from what it changed.
            samples = await eventually(lambda: scrape(app), lambda m: backlog_shown(m) == (3, 3))
            stored = [await followup.views.get(story.review_id) for story in reviews]
            timers = [await followup.timers.for_review(story.review_id) for story in reviews]

    assert [view.version if view else None for view in stored] == [4, 4, 4]
    assert all(view is not None and view.status is ReviewStatus.IN_REVIEW for view in stored)
    # The review's 5 deadline timers plus the item's 5, for the item's moved due date only.
    assert [len(review_timers) for review_timers in timers] == [10, 10, 10]
    # The item's timers for its first due date (day 10) were replaced within the batch by those for day 12.
    assert all("@20261208" not in timer["_id"] for review_timers in timers for timer in review_timers)
    assert all(any("@20261210" in timer["_id"] for timer in review_timers) for review_timers in timers)
    assert samples[("lessons_reviews_open", (("severity", "high"), ("status", "in_review")))] == 3
    assert samples[("lessons_action_items_open", (("priority", "high"),))] == 3

    assert calls.count("event") == 0  # none left to the per-event path
    assert calls.count("batch") == calls.count("read") < len(events)  # several events to a batch
    # Counted once, at start: neither the batches nor the start-up sweep (the clock stands still) counted again.
    assert calls.count("recount") == 1


async def test_an_unreachable_mongodb_mid_batch_rewinds_it_and_every_event_counts_once(
    servers: Servers, unique: str
) -> None:
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    reviews, events = stories(unique)
    unlucky = events[6]  # the second review's move to in_review
    await produce(servers, settings, events)

    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        app = create_app(
            KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
            MongoSettings(uri=servers.mongodb_uri, database=db.name),
            settings,
            ManualClock(T0 + 2 * DAY),
        )
        followup = parts(app)
        save_many = followup.views.save_many
        outage = {"left": 2}

        async def save_with_outage(changes: Sequence[ViewChange]) -> set[str]:
            if any(str(unlucky.event_id) in view.seen_event_ids for _, view in changes) and outage["left"]:
                outage["left"] -= 1
                raise AutoReconnect("connection refused")
            return await save_many(changes)

        followup.views.save_many = save_with_outage  # type: ignore[method-assign]
        async with app.router.lifespan_context(app):
            samples = await eventually(lambda: scrape(app), lambda m: tracked(m) == len(events))
            stored = [await followup.views.get(story.review_id) for story in reviews]
            timers = [await followup.timers.for_review(story.review_id) for story in reviews]

    assert outage["left"] == 0
    assert [view.version if view else None for view in stored] == [4, 4, 4]
    assert [len(review_timers) for review_timers in timers] == [10, 10, 10]
    # Every event counted as tracked once: the rewound batch had stored nothing, so nothing of it came back as a
    # duplicate (a crash after its views were stored is ``test_batch_writes``' redelivery test).
    assert tracked(samples) == len(events)
    assert tracked(samples, "duplicate") == 0
    assert samples.get(("lessons_dlq_messages_total", (("topic", settings.dlq_topic),)), 0.0) == 0
