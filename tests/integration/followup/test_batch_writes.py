"""Follow-up's consumer writes a batch of review events in the same few round trips whatever its size.

Against the MongoDB-compatible server, with the commands counted by PyMongo's command monitoring on a client built
here: a batch of 10 events and one of 100 cost the same number of commands, and end where tracking the events one by
one ends (views, timers, verification timers, recurrences); a review another writer changed meanwhile is tracked
through the per-event path without losing either change; a crash between the views' write and the timers' is
repaired by the batch's redelivery.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from schemas import ActionItemStatus, AnyReviewEvent
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.verification import VerificationPolicy
from services.followup.handlers import ReviewEventConsumer
from services.followup.metrics import FollowupMetrics
from services.followup.recurrences import RecurrenceRepository
from services.followup.review_views import ReviewViewRepository
from services.followup.timers_store import TimerRepository
from services.followup.tracker import ReviewTracker
from services.followup.verification_timers import VerificationTimerRepository
from services.followup.verifier import VerificationTracking
from tests.conftest import Servers
from tests.integration.followup.verification_story import NO_RECURRENCE
from tests.unit.followup.builders import DAY, T0, ReviewStory
from tests.unit.followup.fakes import RecordingDeadLetters, record_of

pytestmark = pytest.mark.integration

Document = dict[str, Any]
COLLECTIONS = ("followup_reviews", "timers", "verification_timers", "followup_recurrences")


class CommandCounter(CommandListener):
    """The commands the client sends to the database, by name (``hello`` and friends go to server monitoring)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


class StoppedClock:
    def now(self) -> Any:
        return T0 + 2 * DAY


@dataclass
class Followup:
    views: ReviewViewRepository
    timers: TimerRepository
    tracker: ReviewTracker
    consumer: ReviewEventConsumer
    metrics: FollowupMetrics
    counter: CommandCounter
    dead_letters: RecordingDeadLetters


@asynccontextmanager
async def followup_on(servers: Servers, name: str) -> AsyncIterator[Followup]:
    """The consumer wired as in production on a scratch database, its commands counted."""
    counter = CommandCounter()
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb_uri, tz_aware=True, event_listeners=[counter])
    database = client[name]
    try:
        views, timers = ReviewViewRepository(database), TimerRepository(database)
        verification_timers, recurrences = VerificationTimerRepository(database), RecurrenceRepository(database)
        for repository in (views, timers, verification_timers, recurrences):
            await repository.ensure_indexes()
        tracking = VerificationTracking(verification_timers, recurrences, VerificationPolicy())
        tracker = ReviewTracker(views, timers, FollowupPolicy(), tracking)
        metrics, dead_letters = FollowupMetrics.create(), RecordingDeadLetters()
        consumer = ReviewEventConsumer(
            tracker, views, dead_letters, metrics, clock=StoppedClock(), max_attempts=3, retry_backoff_seconds=0.0
        )
        await metrics.refresh_backlog(views, StoppedClock().now())  # counted once, at start, as the service does
        yield Followup(views, timers, tracker, consumer, metrics, counter, dead_letters)
    finally:
        await client.drop_database(name)
        await client.close()


def events_of(reviews: int, unique: str) -> list[AnyReviewEvent]:
    """Five events a review: opened, an item added then done with a recurrence check, a new owner, a recurrence."""
    events: list[AnyReviewEvent] = []
    for number in range(reviews):
        story = ReviewStory(f"r{number}-{unique}")
        events += [
            story.opened(at=T0, due_at=T0 + 7 * DAY),
            story.item_added(at=T0, item_id="a-1", due_at=T0 + 10 * DAY),
            story.item_updated(at=T0 + DAY, item_id="a-1", status=ActionItemStatus.DONE).model_copy(
                update={"verification": NO_RECURRENCE}
            ),
            story.updated(at=T0 + DAY, changed=("owner",), owner="carol"),
            story.recurred(at=T0 + DAY, after_remediation=False, same_version=True),
        ]
    return events


async def contents(followup: Followup) -> dict[str, list[Document]]:
    database = followup.views.reviews.database
    return {
        name: await database[name].find({}, {"lease_owner": 0, "lease_until": 0}).sort("_id", 1).to_list()
        for name in COLLECTIONS
    }


async def process(followup: Followup, events: Sequence[AnyReviewEvent]) -> list[str]:
    """The commands one batch of these events costs."""
    followup.counter.commands.clear()
    await followup.consumer.process([record_of(event, offset) for offset, event in enumerate(events)])
    return list(followup.counter.commands)


def tracked(metrics: FollowupMetrics, outcome: str = "tracked") -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "lessons_review_events_total" and sample.labels["outcome"] == outcome
    )


async def test_a_batch_of_10_and_one_of_100_cost_the_same_commands_and_end_as_one_by_one(
    servers: Servers, unique: str
) -> None:
    costs = {}
    for size in (10, 100):
        events = events_of(size // 5, unique)
        async with (
            followup_on(servers, f"batch_{size}_{unique}") as batched,
            followup_on(servers, f"single_{size}_{unique}") as one_by_one,
        ):
            costs[size] = await process(batched, events)
            for event in events:
                await one_by_one.tracker.track(event)
            assert await contents(batched) == await contents(one_by_one)
            # Four events a review change its view; the recurrence changes nothing follow-up keeps.
            assert tracked(batched.metrics) == size * 4 // 5
            assert tracked(batched.metrics, "unchanged") == size // 5
            assert len((await contents(batched))["verification_timers"]) == size // 5

    # Read the views, read the timers; then one bulk write each for the views (new ones: inserts), the timers, the
    # recurrences and the verification timers (PyMongo sends a bulk write as one command per kind of write in it).
    assert costs[10] == costs[100] == ["find", "find", "insert", "insert", "insert", "update", "delete"]


async def test_a_redelivered_batch_changes_nothing_and_costs_no_view_write(servers: Servers, unique: str) -> None:
    events = events_of(4, unique)
    async with followup_on(servers, f"again_{unique}") as followup:
        await process(followup, events)
        before = await contents(followup)
        commands = await process(followup, events)
        assert await contents(followup) == before
    assert tracked(followup.metrics, "duplicate") == len(events) * 4 // 5
    assert tracked(followup.metrics, "unchanged") == 2 * len(events) // 5  # the recurrences, each time
    # Only the reads, and the verification side's idempotent writes (recurrences, first attempts, cancellations).
    assert commands == ["find", "find", "insert", "update", "delete"]


async def test_events_that_change_nothing_follow_up_keeps_write_no_view_and_no_timer(
    servers: Servers, unique: str
) -> None:
    """In a storm nearly every incident recurs: the new review's ``ReviewRecurred``, and the earlier review's
    ``ReviewUpdated`` linking it (a new version, ``related_reviews`` only), used to rewrite both views each time."""
    earlier, later = ReviewStory(f"earlier-{unique}"), ReviewStory(f"later-{unique}")
    async with followup_on(servers, f"unchanged_{unique}") as followup:
        await process(followup, [earlier.opened(at=T0), later.opened(at=T0)])
        before = await contents(followup)
        stored = await followup.views.get(earlier.review_id)
        assert stored is not None
        batch: list[AnyReviewEvent] = [
            later.recurred(at=T0 + DAY, after_remediation=False, same_version=True),
            earlier.updated(at=T0 + DAY, changed=("related_reviews",), owner=stored.owner, due_at=stored.due_at),
        ]
        commands = await process(followup, batch)
        after = await contents(followup)
        moved = earlier.updated(at=T0 + 2 * DAY, changed=("owner",), owner="carol")
        await process(followup, [moved])
        earlier_view = await followup.views.get(earlier.review_id)

    assert commands == ["find", "find", "insert"]  # the reads, and the recurrence's record
    assert {name: after[name] for name in COLLECTIONS if name != "followup_recurrences"} == {
        name: before[name] for name in COLLECTIONS if name != "followup_recurrences"
    }
    assert [document["review_id"] for document in after["followup_recurrences"]] == [later.review_id]
    assert tracked(followup.metrics, "unchanged") == 2
    # A later change still applies on top, with its own version.
    assert earlier_view is not None
    assert (earlier_view.owner, earlier_view.version) == ("carol", 3)


async def test_a_review_changed_meanwhile_by_another_writer_is_tracked_on_its_own(
    servers: Servers, unique: str
) -> None:
    first, second = ReviewStory(f"a-{unique}"), ReviewStory(f"b-{unique}")
    opened = [first.opened(at=T0), second.opened(at=T0)]
    async with followup_on(servers, f"conflict_{unique}") as followup:
        await process(followup, opened)
        batch: list[AnyReviewEvent] = [
            first.item_added(at=T0, item_id="a-1", due_at=T0 + 10 * DAY),
            first.updated(at=T0 + DAY, changed=("owner",), owner="carol"),
            second.item_added(at=T0, item_id="a-1", due_at=T0 + 10 * DAY),
        ]
        # A rebalance: another replica tracks the first review's next event after this one read the batch's views.
        known = followup.tracker.known

        async def known_then_another_writer(review_ids: Any) -> Any:
            result = await known(review_ids)
            await followup.tracker.track(batch[0])
            return result

        followup.tracker.known = known_then_another_writer  # type: ignore[method-assign]
        await process(followup, batch)
        first_view = await followup.views.get(first.review_id)
        second_view = await followup.views.get(second.review_id)
        timers = await followup.timers.for_review(first.review_id)

    assert first_view is not None
    assert second_view is not None
    assert (first_view.version, first_view.owner, len(first_view.action_items)) == (3, "carol", 1)
    assert second_view.version == 2
    assert all('"owner":"carol"' in timer["payload"] for timer in timers if timer["subject"] == "review")
    # The gauges moved by each change once: a's item (the other writer's) and b's (the batch's).
    assert followup.metrics.registry.get_sample_value("lessons_action_items_open", {"priority": "high"}) == 2
    assert tracked(followup.metrics) == 2 + 2  # the openings, then b's item and a's owner (a's item: a duplicate)
    assert tracked(followup.metrics, "duplicate") == 1
    assert followup.dead_letters.sent == []


async def test_a_crash_between_the_views_and_their_timers_is_repaired_by_the_redelivery(
    servers: Servers, unique: str
) -> None:
    events = events_of(3, unique)
    async with (
        followup_on(servers, f"crash_{unique}") as crashed,
        followup_on(servers, f"intact_{unique}") as intact,
    ):
        reconcile_many = crashed.timers.reconcile_many

        async def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise AutoReconnect("connection refused")

        crashed.timers.reconcile_many = unreachable  # type: ignore[method-assign]
        with pytest.raises(AutoReconnect):  # an outage: the batch is redelivered, not dead-lettered
            await process(crashed, events)
        assert (await contents(crashed))["timers"] == []
        assert len((await contents(crashed))["followup_reviews"]) == 3

        crashed.timers.reconcile_many = reconcile_many  # type: ignore[method-assign]
        await process(crashed, events)
        await process(intact, events)
        assert await contents(crashed) == await contents(intact)
