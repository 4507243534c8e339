"""Timer planning: the set of timers a review's view calls for, with deterministic ids and events."""

from datetime import timedelta
from typing import Any

import pytest

from schemas import (
    ActionItemOverdue,
    ActionItemStatus,
    AnyReviewEvent,
    EffectivenessCheckDue,
    Escalated,
    ReminderDue,
    ReviewOverdue,
    ReviewStatus,
    followup_event_adapter,
    followup_event_id,
)
from services.followup.domain.policy import EscalationLevel, FollowupPolicy
from services.followup.domain.projection import ReviewView, apply_event
from services.followup.domain.timers import PlannedTimer, TimerKind, plan_timers
from tests.unit.followup.builders import DAY, T0, ReviewStory

POLICY = FollowupPolicy()


def view_of(*events: AnyReviewEvent) -> ReviewView:
    view = None
    for event in events:
        view = apply_event(view, event).view
    assert view is not None
    return view


def ids(timers: tuple[PlannedTimer, ...]) -> list[str]:
    return [timer.timer_id for timer in timers]


def test_an_open_review_gets_reminders_overdue_and_escalations_in_order() -> None:
    timers = plan_timers(view_of(ReviewStory().opened(due_at=T0 + 7 * DAY)), POLICY)
    assert ids(timers) == [
        "r-1:reminder:review:2d@20261205T090000Z",
        "r-1:reminder:review:1d@20261205T090000Z",
        "r-1:overdue:review:0@20261205T090000Z",
        "r-1:escalation:review:1@20261205T090000Z",
        "r-1:escalation:review:2@20261205T090000Z",
    ]
    assert [timer.due_at for timer in timers] == [T0 + 5 * DAY, T0 + 6 * DAY, T0 + 7 * DAY, T0 + 9 * DAY, T0 + 14 * DAY]
    # Reminders are moot once the review is due; the first escalation once the second one is.
    assert [timer.expires_at for timer in timers] == [T0 + 7 * DAY, T0 + 7 * DAY, None, T0 + 14 * DAY, None]
    reminder, _, overdue, lead, management = (timer.event for timer in timers)
    assert isinstance(reminder, ReminderDue)
    assert (reminder.subject, reminder.due_at, reminder.before_seconds, reminder.owner) == (
        "review",
        T0 + 7 * DAY,
        2 * 86_400,
        "alice",
    )
    assert isinstance(overdue, ReviewOverdue)
    assert isinstance(lead, Escalated)
    assert isinstance(management, Escalated)
    assert [(e.level, e.target, e.overdue_seconds) for e in (lead, management)] == [
        (1, "team_lead", 2 * 86_400),
        (2, "management", 7 * 86_400),
    ]


def test_events_carry_ids_derived_from_their_timer_and_the_time_they_are_due() -> None:
    first = plan_timers(view_of(ReviewStory().opened()), POLICY)
    again = plan_timers(view_of(ReviewStory().opened()), POLICY)
    assert first == again
    for timer in first:
        assert timer.event.event_id == followup_event_id(timer.timer_id)
        assert timer.event.occurred_at == timer.due_at
        assert timer.event.timer_id == timer.timer_id
        assert followup_event_adapter.validate_json(timer.event.model_dump_json()) == timer.event


def test_reminders_that_would_come_before_the_due_date_was_set_are_left_out() -> None:
    timers = plan_timers(view_of(ReviewStory().opened(due_at=T0 + 36 * timedelta(hours=1))), POLICY)
    assert ids(timers)[0] == "r-1:reminder:review:1d@20261129T210000Z"
    assert len([t for t in timers if t.kind is TimerKind.REMINDER]) == 1


def test_a_moved_due_date_replaces_every_timer_of_the_old_one() -> None:
    story = ReviewStory()
    opened = story.opened(due_at=T0 + 7 * DAY)
    before = set(ids(plan_timers(view_of(opened), POLICY)))
    moved = story.updated(at=T0 + DAY, changed=("due_at",), due_at=T0 + 10 * DAY)
    after = set(ids(plan_timers(view_of(opened, moved), POLICY)))
    assert before.isdisjoint(after)
    assert all(timer_id.endswith("@20261208T090000Z") for timer_id in after)
    assert len(after) == 5


def test_action_items_get_their_own_timers_until_they_are_finished() -> None:
    story = ReviewStory()
    opened = story.opened(due_at=T0 + 3 * DAY)
    published = story.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.PUBLISHED)
    item = story.item_added(at=T0 + DAY, due_at=T0 + 10 * DAY)
    no_due = story.item_added(at=T0 + DAY, item_id="a-2")

    timers = plan_timers(view_of(opened, published, item, no_due), POLICY)
    assert ids(timers) == [
        "r-1:reminder:item.a-1:2d@20261208T090000Z",
        "r-1:reminder:item.a-1:1d@20261208T090000Z",
        "r-1:overdue:item.a-1:0@20261208T090000Z",
        "r-1:escalation:item.a-1:1@20261208T090000Z",
        "r-1:escalation:item.a-1:2@20261208T090000Z",
    ]
    overdue = timers[2].event
    assert isinstance(overdue, ActionItemOverdue)
    assert (overdue.action_item_id, overdue.owner, overdue.priority) == ("a-1", "bob", "high")

    done = story.item_updated(at=T0 + 2 * DAY, status=ActionItemStatus.DONE, due_at=T0 + 10 * DAY)
    remaining = plan_timers(view_of(opened, published, item, no_due, done), POLICY)
    assert remaining == ()  # a-2 is still open: no effectiveness check yet, and a-1's timers are gone


def test_when_every_item_is_done_the_effectiveness_check_is_planned_and_survives_closing() -> None:
    story = ReviewStory()
    events: list[AnyReviewEvent] = [
        story.opened(),
        story.item_added(at=T0, due_at=T0 + 10 * DAY),
        story.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.PUBLISHED),
        story.item_updated(at=T0 + 4 * DAY, status=ActionItemStatus.DONE),
    ]
    (check,) = plan_timers(view_of(*events), POLICY)
    assert check.timer_id == "r-1:effectiveness_check:review:0@20261202T090000Z"
    assert check.due_at == T0 + 34 * DAY
    assert check.expires_at is None
    assert isinstance(check.event, EffectivenessCheckDue)
    assert check.event.done_action_item_ids == ("a-1",)

    closed = story.status(at=T0 + 5 * DAY, from_status=ReviewStatus.PUBLISHED, to_status=ReviewStatus.CLOSED)
    assert plan_timers(view_of(*events, closed), POLICY) == (check,)


@pytest.mark.parametrize("dropped", [ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED])
def test_a_dropped_review_has_no_timers_at_all(dropped: ReviewStatus) -> None:
    story = ReviewStory()
    events: list[AnyReviewEvent] = [
        story.opened(),
        story.item_added(at=T0, due_at=T0 + 10 * DAY),
        story.item_updated(at=T0 + DAY, status=ActionItemStatus.DONE),
        story.item_added(at=T0 + DAY, item_id="a-2", due_at=T0 + 10 * DAY),
        story.status(at=T0 + 2 * DAY, from_status=ReviewStatus.OPEN, to_status=dropped),
    ]
    assert plan_timers(view_of(*events), POLICY) == ()


def test_a_closed_review_keeps_no_deadline_timers_for_open_items() -> None:
    story = ReviewStory()
    events: list[AnyReviewEvent] = [
        story.opened(),
        story.item_added(at=T0, due_at=T0 + 10 * DAY),
        story.status(at=T0 + 2 * DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.CLOSED),
    ]
    assert plan_timers(view_of(*events), POLICY) == ()


def test_levels_targets_and_reminders_follow_the_policy() -> None:
    policy = FollowupPolicy(
        reminders_before=(timedelta(hours=36),),
        escalation_levels=(EscalationLevel(timedelta(hours=1), "sre_on_call"),),
        effectiveness_check_after=timedelta(days=60),
    )
    timers = plan_timers(view_of(ReviewStory().opened(due_at=T0 + 7 * DAY)), policy)
    assert ids(timers) == [
        "r-1:reminder:review:36h@20261205T090000Z",
        "r-1:overdue:review:0@20261205T090000Z",
        "r-1:escalation:review:1@20261205T090000Z",
    ]
    escalation = timers[-1].event
    assert isinstance(escalation, Escalated)
    assert escalation.target == "sre_on_call"


@pytest.mark.parametrize(
    "policy",
    [
        {"reminders_before": (timedelta(0),)},
        {"reminders_before": (DAY, DAY)},
        {"escalation_levels": (EscalationLevel(7 * DAY, "a"), EscalationLevel(2 * DAY, "b"))},
        {"escalation_levels": (EscalationLevel(DAY, " "),)},
        {"effectiveness_check_after": timedelta(0)},
    ],
)
def test_a_policy_that_cannot_be_followed_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"reminder|escalation|effectiveness"):
        FollowupPolicy(**policy)
