"""Tracking a batch of review events in a few writes ends exactly where tracking each event in turn ends.

With the in-memory repositories: the same views, timers, outcomes and changes for the gauges, for any events in any
order cut into any batches (several events of one review in a batch, duplicates, stale and unknown reviews' events);
a review changed by another writer meanwhile goes through the per-event path; a crash between the views' write and
the timers' is repaired by the redelivery. The MongoDB side is in ``tests/integration/followup/test_batch_writes.py``.
"""

import itertools
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.errors import AutoReconnect

from schemas import ActionItemStatus, AnyReviewEvent, ReviewStatus
from services.followup.domain.backlog import Backlog, with_change
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import Applied, Outcome
from services.followup.handlers import ReviewEventConsumer
from services.followup.metrics import FollowupMetrics
from services.followup.tracker import ReviewTracker
from tests.unit.followup.builders import DAY, T0, ReviewStory
from tests.unit.followup.fakes import EMPTY, InMemoryReviewViews, InMemoryTimers, RecordingDeadLetters, record_of


def story_of(review_id: str) -> list[AnyReviewEvent]:
    story = ReviewStory(review_id)
    opened = story.opened()
    return [
        opened,
        story.item_added(at=T0 + DAY, item_id="a-1", due_at=T0 + 10 * DAY),
        story.updated(at=T0 + DAY, changed=("owner",), owner="carol"),
        story.updated(at=T0 + DAY, changed=("due_at",), due_at=T0 + 9 * DAY),
        story.status(at=T0 + 3 * DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.PUBLISHED),
        story.item_updated(at=T0 + 4 * DAY, item_id="a-1", status=ActionItemStatus.DONE),
        opened.model_copy(update={"event_id": uuid4()}),  # a stale copy: version 1 again, under another id
    ]


POOL = [event for review in ("r-a", "r-b", "r-c") for event in story_of(review)]


class Tracking:
    def __init__(self) -> None:
        self.views, self.timers = InMemoryReviewViews(), InMemoryTimers()
        self.tracker = ReviewTracker(self.views, self.timers, FollowupPolicy())

    async def one_by_one(self, events: list[AnyReviewEvent]) -> list[Applied]:
        return [await self.tracker.track(event) for event in events]

    async def in_batch(self, events: list[AnyReviewEvent]) -> list[Applied | None]:
        known = await self.tracker.known(event.review_id for event in events)
        return await self.tracker.track_batch(events, known)

    def state(self) -> tuple[Any, ...]:
        return self.views.views, self.timers.timers


def outcomes(results: list[Applied] | list[Applied | None]) -> list[tuple[Outcome, tuple[Any, ...]] | None]:
    return [None if applied is None else (applied.outcome, applied.facts) for applied in results]


def gauges_moved(views: InMemoryReviewViews) -> Backlog:
    """The backlog the gauges show after following the views' changes (one per event, or one per review and batch)."""
    backlog = EMPTY
    for before, after in views.take_changes() or []:
        backlog = with_change(backlog, before, after, T0 + 8 * DAY)
    return backlog


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=len(POOL) - 1), max_size=40),
    st.lists(st.integers(min_value=1, max_value=40), max_size=8),
)
async def test_a_batch_ends_where_tracking_its_events_one_by_one_ends(deliveries: list[int], cuts: list[int]) -> None:
    events = [POOL[index] for index in deliveries]
    boundaries = sorted({0, len(events), *(cut for cut in cuts if cut < len(events))})
    sequential, batched = Tracking(), Tracking()

    expected = await sequential.one_by_one(events)
    got: list[Applied | None] = []
    for start, end in itertools.pairwise(boundaries):
        got += await batched.in_batch(events[start:end])

    assert outcomes(got) == outcomes(expected)
    assert batched.state() == sequential.state()
    assert gauges_moved(batched.views) == gauges_moved(sequential.views)
    assert batched.views.bulk_writes <= len(boundaries) - 1  # one write of views per batch at most


async def test_several_events_of_a_review_in_a_batch_are_one_write_of_its_last_view() -> None:
    events = story_of("r-a")[:4] + story_of("r-b")[:2]
    batched = Tracking()
    results = await batched.in_batch([*events, events[1], events[0]])  # two redelivered at the end

    assert outcomes(results)[-2:] == [(Outcome.DUPLICATE, ()), (Outcome.DUPLICATE, ())]
    assert batched.views.bulk_writes == 1
    assert batched.timers.bulk_writes == 1
    assert [(before, after.version) for before, after in batched.views.changes] == [(None, 4), (None, 2)]
    view = batched.views.views["r-a"]
    assert (view.owner, view.due_at) == ("carol", T0 + 9 * DAY)
    # The review's timers for its last due date (day 9) only: those for the first (day 7) were never written.
    assert any("@20261207" in timer_id for timer_id in batched.timers.of_review("r-a"))
    assert all("@20261205" not in timer_id for timer_id in batched.timers.of_review("r-a"))


async def test_a_review_changed_by_another_writer_meanwhile_is_left_to_the_per_event_path() -> None:
    first, second = story_of("r-a"), story_of("r-b")
    batched = Tracking()
    await batched.one_by_one([first[0], second[0]])
    known = await batched.tracker.known(["r-a", "r-b"])
    # Another replica (a rebalance) applies the item's event to r-a after this batch read it.
    other = ReviewTracker(batched.views, batched.timers, FollowupPolicy())
    await other.track(first[1])

    results = await batched.tracker.track_batch([first[1], first[2], second[1]], known)

    # r-a's events are left to be tracked one by one; r-b's is tracked.
    assert [None if applied is None else applied.outcome for applied in results] == [None, None, Outcome.TRACKED]
    assert "r-a" not in known.views  # read again by the per-event path
    assert batched.views.views["r-a"].version == 2  # the other writer's, untouched by the batch
    assert batched.views.views["r-b"].version == 2
    retried = [await batched.tracker.track(event, known) for event in (first[1], first[2])]
    assert [applied.outcome for applied in retried] == [Outcome.DUPLICATE, Outcome.TRACKED]
    assert batched.views.views["r-a"].owner == "carol"


class CrashingTimers(InMemoryTimers):
    """The process dies (or MongoDB goes away) after the views were written, before the timers were."""

    crashes: int = 1

    async def reconcile_many(self, plans: Any) -> dict[str, dict[str, Any] | None]:
        if self.crashes:
            self.crashes -= 1
            raise AutoReconnect("connection refused")
        result: dict[str, dict[str, Any] | None] = await super().reconcile_many(plans)
        return result


async def test_a_crash_between_the_views_and_their_timers_is_repaired_by_the_redelivery() -> None:
    events = story_of("r-a")[:3]
    views, timers = InMemoryReviewViews(), CrashingTimers()
    tracker = ReviewTracker(views, timers, FollowupPolicy())
    with pytest.raises(AutoReconnect):
        await tracker.track_batch(events, await tracker.known(["r-a"]))
    assert views.views["r-a"].version == 3
    assert timers.of_review("r-a") == []  # stored view, no timers: the state the crash leaves

    redelivered = await tracker.track_batch(events, await tracker.known(["r-a"]))

    assert {applied.outcome for applied in redelivered if applied} == {Outcome.DUPLICATE}
    expected = Tracking()
    await expected.one_by_one(events)
    assert timers.timers == expected.timers.timers


class RefusingTimers(InMemoryTimers):
    """A batch write that fails for another reason than an outage (e.g. one document the server refuses)."""

    async def reconcile_many(self, plans: Any) -> dict[str, dict[str, Any] | None]:
        raise ValueError("document too large")

    async def reconcile(self, review_id: str, planned: Any, stored: Any = None) -> dict[str, Any]:
        if review_id == "r-bad":
            raise ValueError("document too large")
        return await super().reconcile(review_id, planned, stored)


async def test_a_batch_that_fails_is_tracked_one_by_one_and_only_the_bad_event_is_dead_lettered() -> None:
    good, bad = story_of("r-good")[:2], story_of("r-bad")[:1]
    views, timers = InMemoryReviewViews(), RefusingTimers()
    tracker = ReviewTracker(views, timers, FollowupPolicy())
    metrics = FollowupMetrics.create()
    dead_letters = RecordingDeadLetters()
    consumer = ReviewEventConsumer(
        tracker, views, dead_letters, metrics, clock=StoppedClock(), max_attempts=2, retry_backoff_seconds=0.0
    )
    events = [good[0], bad[0], good[1]]
    await consumer.process([record_of(event, offset) for offset, event in enumerate(events)])
    sent = dead_letters.sent

    assert [value for value, _ in sent] == [bad[0].model_dump_json().encode()]
    assert "failed after 2 attempts" in sent[0][1]
    assert views.views["r-good"].version == 2
    assert timers.of_review("r-good")
    # The batch had stored the good review's view before its timers failed: one by one, its events are duplicates.
    counted = {
        (sample.labels["type"], sample.labels["outcome"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "lessons_review_events_total"
    }
    assert counted == {("ReviewOpened", "duplicate"): 1, ("ActionItemAdded", "duplicate"): 1}


class StoppedClock:
    def now(self) -> datetime:
        return T0
