"""Reconciling a review's timers writes only what differs from what is stored, and ends where a blind write would.

Against the real MongoDB-compatible server: nothing is written when the plan is unchanged; a changed event is
updated, a new deadline inserted and the old one's unfired timers deleted; fired timers are history; and when the
timers changed since they were read (one fired meanwhile), the writes' own filters keep them right.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from schemas import AnyReviewEvent
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import ReviewView, apply_event
from services.followup.domain.timers import PlannedTimer, plan_timers
from services.followup.timers_store import TimerRepository
from tests.conftest import Servers
from tests.support.mongo import scratch_database
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration

POLICY = FollowupPolicy()


@pytest.fixture
async def timers(servers: Servers, unique: str) -> AsyncIterator[TimerRepository]:
    async with scratch_database(servers.mongodb_uri, f"reconcile_{unique}") as db:
        repository = TimerRepository(db)
        await repository.ensure_indexes()
        yield repository


def planned(*events: AnyReviewEvent) -> tuple[ReviewView, tuple[PlannedTimer, ...]]:
    view: ReviewView | None = None
    for event in events:
        view = apply_event(view, event).view
    assert view is not None
    return view, plan_timers(view, POLICY)


class CountingWrites:
    """Counts the bulk writes a reconcile sends."""

    def __init__(self, repository: TimerRepository) -> None:
        self.count = 0
        bulk_write = repository.timers.bulk_write

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await bulk_write(*args, **kwargs)

        repository.timers.bulk_write = counted  # type: ignore[method-assign]


async def stored(repository: TimerRepository, review_id: str) -> dict[str, dict[str, Any]]:
    return {doc["_id"]: doc for doc in await repository.for_review(review_id)}


async def test_only_what_differs_is_written_and_the_result_is_what_is_stored(timers: TimerRepository) -> None:
    story = ReviewStory("r-diff")
    opened = story.opened(at=T0, due_at=T0 + 7 * DAY)
    _, first = planned(opened)
    writes = CountingWrites(timers)

    known = await timers.reconcile("r-diff", first)  # nothing stored yet: five inserts
    assert writes.count == 1
    assert known is not None
    assert set(known) == {timer.timer_id for timer in first} == set(await stored(timers, "r-diff"))

    assert await timers.reconcile("r-diff", first, known) == known  # the same plan: nothing to write
    assert await timers.reconcile("r-diff", first) is not None  # read afresh: still nothing
    assert writes.count == 1

    # A new owner changes the event each timer will publish: updated in place, same ids.
    owner_changed = story.updated(at=T0 + DAY, changed=("owner",), owner="carol")
    _, second = planned(opened, owner_changed)
    known = await timers.reconcile("r-diff", second, known)
    assert writes.count == 2
    documents = await stored(timers, "r-diff")
    assert known is not None
    assert set(known) == set(documents)
    assert all('"owner":"carol"' in doc["payload"] for doc in documents.values())
    assert {timer_id: doc["payload"] for timer_id, doc in known.items()} == {
        timer_id: doc["payload"] for timer_id, doc in documents.items()
    }

    # A moved due date: new timers for the new deadline, the old unfired ones deleted, in one write.
    moved = story.updated(at=T0 + DAY, changed=("due_at",), due_at=T0 + 9 * DAY)
    _, third = planned(opened, owner_changed, moved)
    known = await timers.reconcile("r-diff", third, known)
    assert writes.count == 3
    assert known is not None
    assert set(known) == set(await stored(timers, "r-diff")) == {timer.timer_id for timer in third}


async def test_fired_timers_are_history_and_a_stale_read_is_caught_by_the_filters(timers: TimerRepository) -> None:
    story = ReviewStory("r-fired")
    opened = story.opened(at=T0, due_at=T0 + 7 * DAY)
    _, plan = planned(opened)
    known = await timers.reconcile("r-fired", plan)
    assert known is not None
    first_reminder = plan[0].timer_id

    # The reminder fires after `known` was read: `known` still says it is unfired.
    now = T0 + 5 * DAY
    claimed = await timers.claim_due(now, "replica-a", now + DAY)
    assert claimed is not None
    assert claimed.timer_id == first_reminder
    assert await timers.mark_fired(first_reminder, "replica-a", now)

    # The owner changes: every timer's event changes, the fired one must not.
    _, replanned = planned(opened, story.updated(at=now, changed=("owner",), owner="carol"))
    assert await timers.reconcile("r-fired", replanned, known) is None  # met a timer changed meanwhile
    documents = await stored(timers, "r-fired")
    assert documents[first_reminder]["fired_at"] is not None
    assert '"owner":"alice"' in documents[first_reminder]["payload"]  # history, as it was sent
    assert all('"owner":"carol"' in doc["payload"] for timer_id, doc in documents.items() if timer_id != first_reminder)

    # Read afresh, the fired timer is left alone, whether still planned or not (the review is published).
    again = await timers.reconcile("r-fired", replanned)
    assert again is not None
    assert again[first_reminder]["fired_at"] is not None
    assert await timers.reconcile("r-fired", ()) == {first_reminder: documents[first_reminder]}
    assert set(await stored(timers, "r-fired")) == {first_reminder}


async def test_timers_of_reads_a_batch_of_reviews_at_once(timers: TimerRepository) -> None:
    plans = {}
    for name in ("r-a", "r-b"):
        _, plans[name] = planned(ReviewStory(name).opened(at=T0, due_at=T0 + 7 * DAY))
        await timers.reconcile(name, plans[name])
    found = await timers.timers_of(["r-a", "r-b", "r-none", "r-a"])
    assert sorted(found) == ["r-a", "r-b", "r-none"]
    assert found["r-none"] == {}
    assert {name: set(found[name]) for name in plans} == {
        name: {timer.timer_id for timer in plan} for name, plan in plans.items()
    }
