"""Applying review events to follow-up's view: idempotent, and revealing the facts the metrics need."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ActionItemPriority, ActionItemStatus, AnyReviewEvent, ReviewStatus, Severity
from services.followup.domain.projection import (
    BEFORE_PUBLICATION,
    DROPPED_STATUSES,
    OPEN_STATUSES,
    ActionItemClosed,
    ActionItemTracked,
    Outcome,
    ReviewCompleted,
    ReviewTracked,
    ReviewView,
    apply_event,
)
from tests.unit.followup.builders import DAY, T0, ReviewStory


def replay(events: list[AnyReviewEvent]) -> ReviewView:
    view = None
    for event in events:
        view = apply_event(view, event).view
    assert view is not None
    return view


def test_an_opened_review_is_tracked_with_its_incident_duration() -> None:
    applied = apply_event(None, ReviewStory().opened(started_at=T0 - timedelta(hours=3)))
    assert applied.outcome is Outcome.TRACKED
    assert applied.view is not None
    assert applied.view.status is ReviewStatus.OPEN
    assert applied.view.due_set_at == T0
    # resolved one hour before T0, started three hours before: two hours
    assert applied.facts == (ReviewTracked(Severity.HIGH, ReviewStatus.OPEN, 7_200.0),)


def test_the_same_event_again_an_older_one_or_one_about_an_unknown_review_changes_nothing() -> None:
    story = ReviewStory()
    opened, updated = story.opened(), story.updated(at=T0 + DAY, changed=("owner",), owner="carol")
    view = replay([opened, updated])

    again = apply_event(view, updated)
    assert (again.outcome, again.view, again.facts) == (Outcome.DUPLICATE, view, ())
    older = apply_event(view, opened.model_copy(update={"event_id": uuid4()}))  # unseen id, version 1 < 2
    assert (older.outcome, older.view) == (Outcome.STALE, view)
    orphan = apply_event(
        None, ReviewStory("r-unknown").status(at=T0, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.IN_REVIEW)
    )
    assert (orphan.outcome, orphan.view) == (Outcome.IGNORED, None)


def test_an_update_takes_only_what_it_names_and_a_new_due_date_restarts_its_reminders() -> None:
    story = ReviewStory()
    view = replay([story.opened(owner="alice"), story.updated(at=T0 + DAY, changed=("analysis",))])
    assert (view.owner, view.due_at, view.due_set_at) == ("alice", T0 + 7 * DAY, T0)

    view = replay([story.opened(), story.updated(at=T0 + DAY, changed=("due_at",), due_at=T0 + 9 * DAY)])
    assert (view.owner, view.due_at, view.due_set_at) == ("alice", T0 + 9 * DAY, T0 + DAY)


def test_publishing_completes_the_review_once_on_time_or_late() -> None:
    story = ReviewStory()
    opened = story.opened(due_at=T0 + 5 * DAY)
    published = story.status(at=T0 + 6 * DAY, from_status=ReviewStatus.APPROVED, to_status=ReviewStatus.PUBLISHED)
    reopened = story.status(at=T0 + 7 * DAY, from_status=ReviewStatus.PUBLISHED, to_status=ReviewStatus.IN_REVIEW)
    again = story.status(at=T0 + 8 * DAY, from_status=ReviewStatus.IN_REVIEW, to_status=ReviewStatus.PUBLISHED)

    view = replay([opened])
    first = apply_event(view, published)
    assert first.facts == (ReviewCompleted(Severity.HIGH, 6 * 86_400.0 + 3_600.0, on_time=False),)
    assert apply_event(replay([opened, published, reopened]), again).facts == ()

    on_time = ReviewStory()
    facts = apply_event(
        replay([on_time.opened(due_at=T0 + 5 * DAY)]),
        on_time.status(at=T0 + 5 * DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.CLOSED),
    ).facts
    assert [fact.on_time for fact in facts if isinstance(fact, ReviewCompleted)] == [True]


def test_a_cancelled_review_that_is_closed_is_not_counted_as_completed() -> None:
    story = ReviewStory()
    view = replay(
        [story.opened(), story.status(at=T0, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.CANCELLED)]
    )
    closing = story.status(at=T0 + DAY, from_status=ReviewStatus.CANCELLED, to_status=ReviewStatus.CLOSED)
    assert apply_event(view, closing).facts == ()


def test_action_items_are_tracked_closed_and_reopened() -> None:
    story = ReviewStory()
    view = replay([story.opened()])
    added = apply_event(view, story.item_added(at=T0 + DAY, due_at=T0 + 10 * DAY, priority=ActionItemPriority.LOW))
    assert added.facts == (ActionItemTracked(ActionItemPriority.LOW),)
    assert added.view is not None
    done = apply_event(
        added.view,
        story.item_updated(
            at=T0 + 4 * DAY, status=ActionItemStatus.DONE, due_at=T0 + 10 * DAY, priority=ActionItemPriority.LOW
        ),
    )
    assert done.facts == (ActionItemClosed(ActionItemPriority.LOW, ActionItemStatus.DONE, 3 * 86_400.0),)
    assert done.view is not None
    assert done.view.all_items_done_at() == T0 + 4 * DAY
    reopened = apply_event(done.view, story.item_updated(at=T0 + 5 * DAY, status=ActionItemStatus.IN_PROGRESS))
    assert reopened.view is not None
    item = reopened.view.item("a-1")
    assert item is not None
    assert (item.status, item.closed_at, item.due_at) == (ActionItemStatus.IN_PROGRESS, None, None)
    assert reopened.view.all_items_done_at() is None


def test_all_items_done_needs_one_item_actually_done() -> None:
    story = ReviewStory()
    view = replay(
        [
            story.opened(),
            story.item_added(at=T0, item_id="a-1"),
            story.item_updated(at=T0 + DAY, item_id="a-1", status=ActionItemStatus.WONT_DO),
        ]
    )
    assert view.all_items_done_at() is None
    story = ReviewStory("r-2")
    view = replay(
        [
            story.opened(),
            story.item_added(at=T0, item_id="a-1"),
            story.item_added(at=T0, item_id="a-2"),
            story.item_updated(at=T0 + DAY, item_id="a-1", status=ActionItemStatus.WONT_DO),
            story.item_updated(at=T0 + 2 * DAY, item_id="a-2", status=ActionItemStatus.DONE),
        ]
    )
    assert view.all_items_done_at() == T0 + 2 * DAY


def test_a_recurrence_changes_nothing_follow_up_keeps_so_the_view_stays_as_stored() -> None:
    story = ReviewStory()
    opened = story.opened(severity=Severity.CRITICAL)
    recurred = story.recurred(at=T0, after_remediation=True, same_version=True)
    assert recurred.version == opened.version == 1
    view = replay([opened])
    applied = apply_event(view, recurred)
    # Recorded apart (followup_recurrences): the very view comes back, so nothing is written, and again on redelivery.
    assert (applied.outcome, applied.view, applied.facts) == (Outcome.UNCHANGED, view, ())
    assert applied.view is view
    assert apply_event(applied.view, recurred).outcome is Outcome.UNCHANGED


def test_an_edit_follow_up_does_not_track_leaves_the_view_and_its_version_as_they_are() -> None:
    story = ReviewStory()
    view = replay([story.opened(owner="alice")])
    # Review links a recurrence to this (earlier) review: a new version that changes only what follow-up ignores.
    linked = story.updated(at=T0 + DAY, changed=("related_reviews",), owner="alice", due_at=view.due_at)
    assert linked.version == view.version + 1
    unchanged = apply_event(view, linked)
    assert unchanged.outcome is Outcome.UNCHANGED
    assert unchanged.view is view
    # The next change still applies, and takes its own version.
    moved = apply_event(view, story.updated(at=T0 + 2 * DAY, changed=("owner",), owner="carol"))
    assert moved.outcome is Outcome.TRACKED
    assert moved.view is not None
    assert (moved.view.owner, moved.view.version) == ("carol", 3)


def test_times_are_cut_to_the_milliseconds_mongodb_keeps() -> None:
    precise = datetime(2026, 12, 1, 9, 0, 0, 123_456, tzinfo=UTC)
    view = replay([ReviewStory().opened(at=precise, due_at=precise + DAY)])
    assert view.opened_at.microsecond == 123_000
    assert view.due_at is not None
    assert view.due_at.microsecond == 123_000


def _whole_story() -> list[AnyReviewEvent]:
    story = ReviewStory()
    return [
        story.opened(),
        story.item_added(at=T0 + DAY, item_id="a-1", due_at=T0 + 10 * DAY),
        story.updated(at=T0 + DAY, changed=("owner",), owner="carol"),
        story.item_added(at=T0 + 2 * DAY, item_id="a-2", due_at=T0 + 12 * DAY),
        story.status(at=T0 + 3 * DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.PUBLISHED),
        story.item_updated(at=T0 + 4 * DAY, item_id="a-1", status=ActionItemStatus.DONE),
        story.recurred(at=T0 + 5 * DAY, after_remediation=False, same_version=True),
        story.item_updated(at=T0 + 6 * DAY, item_id="a-2", status=ActionItemStatus.DONE),
        story.status(at=T0 + 7 * DAY, from_status=ReviewStatus.PUBLISHED, to_status=ReviewStatus.CLOSED),
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8), max_size=12))
def test_redelivering_any_events_in_any_order_changes_nothing(redelivered: list[int]) -> None:
    events = _whole_story()
    once = replay(events)
    view = once
    for index in redelivered:
        applied = apply_event(view, events[index])
        assert applied.outcome in {Outcome.DUPLICATE, Outcome.STALE}
        assert applied.facts == ()
        assert applied.view is not None
        view = applied.view
    assert view == once


def test_which_statuses_count_as_open_before_publication_or_dropped() -> None:
    assert {ReviewStatus.CLOSED, ReviewStatus.NOT_REQUIRED, ReviewStatus.CANCELLED}.isdisjoint(OPEN_STATUSES)
    assert ReviewStatus.PUBLISHED in OPEN_STATUSES
    assert ReviewStatus.PUBLISHED not in BEFORE_PUBLICATION
    assert {ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED} == DROPPED_STATUSES
