"""The backlog gauges between counts: moved by each stored change exactly as a count would, counted again only when
the recount interval has passed (or changes were lost), never by a batch."""

from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from schemas import ActionItemPriority, ActionItemStatus, AnyReviewEvent, ReviewStatus, Severity
from services.followup.domain.backlog import Backlog, backlog_from_counts, with_change
from services.followup.domain.projection import ReviewView, apply_event
from services.followup.metrics import FollowupMetrics
from services.followup.ports import ViewChange
from services.followup.review_views import ReviewViewRepository
from tests.unit.followup.builders import DAY, T0, ReviewStory

EMPTY = backlog_from_counts(reviews_open={}, reviews_overdue={}, action_items_open={}, action_items_overdue={})


def counted(views: list[ReviewView], at: datetime) -> Backlog:
    """What counting these views in MongoDB gives (the aggregation's rules, written out for a handful of views)."""
    reviews_open: dict[tuple[str, str], int] = {}
    reviews_overdue: dict[str, int] = {}
    items_open: dict[str, int] = {}
    items_overdue: dict[str, int] = {}
    for view in views:
        if view.status not in {
            ReviewStatus.OPEN,
            ReviewStatus.IN_REVIEW,
            ReviewStatus.APPROVED,
            ReviewStatus.PUBLISHED,
        }:
            continue
        key = (view.status.value, view.severity.value)
        reviews_open[key] = reviews_open.get(key, 0) + 1
        if view.status is not ReviewStatus.PUBLISHED and view.due_at is not None and view.due_at <= at:
            reviews_overdue[view.severity.value] = reviews_overdue.get(view.severity.value, 0) + 1
        for item in view.action_items:
            if item.status in (ActionItemStatus.DONE, ActionItemStatus.WONT_DO):
                continue
            items_open[item.priority.value] = items_open.get(item.priority.value, 0) + 1
            if item.due_at is not None and item.due_at <= at:
                items_overdue[item.priority.value] = items_overdue.get(item.priority.value, 0) + 1
    return backlog_from_counts(
        reviews_open=reviews_open,
        reviews_overdue=reviews_overdue,
        action_items_open=items_open,
        action_items_overdue=items_overdue,
    )


def test_moving_the_backlog_by_each_change_gives_what_a_count_gives() -> None:
    at = T0 + 6 * DAY
    late, early = ReviewStory("late"), ReviewStory("early")
    events: list[AnyReviewEvent] = [
        late.opened(severity=Severity.CRITICAL, due_at=T0 + 5 * DAY),
        early.opened(severity=Severity.HIGH, due_at=T0 + 9 * DAY),
        late.item_added(at=T0, item_id="a-1", due_at=T0 + 3 * DAY, priority=ActionItemPriority.CRITICAL),
        late.item_added(at=T0, item_id="a-2", due_at=None, priority=ActionItemPriority.LOW),
        early.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.IN_REVIEW),
        late.item_updated(
            at=T0 + DAY, item_id="a-1", status=ActionItemStatus.DONE, priority=ActionItemPriority.CRITICAL
        ),
        early.status(at=T0 + 2 * DAY, from_status=ReviewStatus.IN_REVIEW, to_status=ReviewStatus.CANCELLED),
    ]
    views: dict[str, ReviewView] = {}
    backlog = EMPTY
    for event in events:
        before = views.get(event.review_id)
        after = apply_event(before, event).view
        assert after is not None
        views[event.review_id] = after
        backlog = with_change(backlog, before, after, at)
        assert backlog == counted(list(views.values()), at), event.type


class FakeViews:
    """The repository's counting side: how often it counted, and the changes it hands over."""

    def __init__(self, backlog: Backlog) -> None:
        self.counted = 0
        self.backlog_to_count = backlog
        self.changes: list[ViewChange] | None = []

    async def backlog(self, _now: datetime) -> Backlog:
        self.counted += 1
        self.changes = []
        return self.backlog_to_count

    def take_changes(self) -> list[ViewChange] | None:
        changes, self.changes = self.changes, []
        return changes


def open_reviews(metrics: FollowupMetrics) -> float | None:
    return metrics.registry.get_sample_value("lessons_reviews_open", {"status": "open", "severity": "high"})


async def test_batches_never_count_and_refreshes_count_once_per_interval() -> None:
    metrics = FollowupMetrics.create(backlog_recount=timedelta(minutes=1))
    five_open = backlog_from_counts(
        reviews_open={("open", "high"): 5}, reviews_overdue={}, action_items_open={}, action_items_overdue={}
    )
    fake = FakeViews(five_open)
    await metrics.refresh_backlog(fake, T0)  # start-up: counts
    assert (fake.counted, open_reviews(metrics)) == (1, 5)

    story = ReviewStory("new")
    opened = apply_event(None, story.opened(severity=Severity.HIGH, due_at=T0 + DAY)).view
    assert opened is not None
    for moment in (T0, T0 + timedelta(seconds=30)):
        fake.changes = [(None, opened)]
        await metrics.show_changes(fake, moment)  # what a batch calls
        fake.changes = []
        await metrics.refresh_backlog(fake, moment)  # within the interval: no count
    assert (fake.counted, open_reviews(metrics)) == (1, 7)

    await metrics.refresh_backlog(fake, T0 + timedelta(minutes=1))  # a sweep a minute after the count: counts
    assert (fake.counted, open_reviews(metrics)) == (2, 5)
    fake.changes = None  # more changes than the repository keeps: only a count can tell
    await metrics.show_changes(fake, T0 + timedelta(minutes=1))
    assert fake.counted == 3


async def test_the_repository_hands_over_each_stored_change_once_and_drops_them_when_counting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    views = ReviewViewRepository(cast(Any, {"followup_reviews": None}), changes_kept=2)

    async def written(_view: ReviewView, _previous: int | None) -> bool:
        return True

    async def count(_now: datetime) -> Backlog:
        return EMPTY

    monkeypatch.setattr(views, "_write", written)
    monkeypatch.setattr(views, "_count", count)
    story = ReviewStory("r")
    first = apply_event(None, story.opened(severity=Severity.LOW)).view
    assert first is not None
    assert await views.save(first, None)
    assert views.take_changes() == [(None, first)]
    assert views.take_changes() == []
    assert await views.save(first, None)
    await views.backlog(T0)
    assert views.take_changes() == []  # in the count
    for _ in range(3):
        assert await views.save(first, None)
    assert views.take_changes() is None  # more than kept: count instead
    assert views.take_changes() == []
