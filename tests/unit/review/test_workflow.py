"""The workflow, pair by pair: every (from, to) of the seven statuses is either allowed or refused with a reason."""

import itertools

import pytest

from schemas import ActionItemStatus, ReviewStatus
from services.review.domain.editing import ActionItemEdit
from services.review.domain.policy import ReviewPolicy
from services.review.domain.refusals import TransitionRefusedError
from services.review.domain.workflow import ALLOWED, Transition, approval_problems, refusal, transition
from tests.unit.review.builders import (
    NOW,
    edited,
    incident,
    item_updated,
    opened,
    ready_to_approve,
    with_item,
    with_status,
)

S = ReviewStatus

# The whole workflow, written out independently of the implementation: (from, to) -> needs a reason.
EXPECTED: dict[tuple[ReviewStatus, ReviewStatus], bool] = {
    (S.OPEN, S.IN_REVIEW): False,
    (S.OPEN, S.NOT_REQUIRED): True,
    (S.OPEN, S.CANCELLED): True,
    (S.IN_REVIEW, S.APPROVED): False,
    (S.IN_REVIEW, S.OPEN): True,
    (S.IN_REVIEW, S.CANCELLED): True,
    (S.APPROVED, S.PUBLISHED): False,
    (S.APPROVED, S.IN_REVIEW): True,
    (S.PUBLISHED, S.CLOSED): False,
    (S.NOT_REQUIRED, S.OPEN): True,
    (S.CANCELLED, S.OPEN): True,
}
ALL_PAIRS = list(itertools.product(ReviewStatus, ReviewStatus))


def test_the_table_covers_every_status() -> None:
    assert set(ALLOWED) == set(ReviewStatus)
    assert len(ALL_PAIRS) == 49


@pytest.mark.parametrize(("current", "to"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_every_pair_is_allowed_or_refused_with_a_reason(current: ReviewStatus, to: ReviewStatus) -> None:
    review = with_status(ready_to_approve(opened()), current)
    if (current, to) not in EXPECTED:
        why = refusal(review, to, "a reason")
        assert why is not None
        assert ("already" if current == to else f"cannot go from {current} to {to}") in why
        with pytest.raises(TransitionRefusedError):
            transition(review, Transition(to=to, reason="a reason"), by="alice", now=NOW)
        return
    if EXPECTED[(current, to)]:
        assert refusal(review, to, None) == f"going from {current} to {to} needs a reason"
    moved, event = transition(review, Transition(to=to, reason="because"), by="alice", now=NOW)
    assert moved.status is to
    assert moved.version == review.version + 1
    assert moved.status_history[-1].from_status is current
    assert moved.status_history[-1].to_status is to
    assert moved.status_history[-1].reason == "because"
    assert (event.from_status, event.to_status, event.version, event.changed_by) == (
        current,
        to,
        moved.version,
        "alice",
    )


def test_a_refusal_lists_where_the_review_can_go() -> None:
    why = refusal(opened(), S.PUBLISHED, None)
    assert why == "a review cannot go from open to published; from open it can go to cancelled, in_review, not_required"
    assert refusal(with_status(opened(), S.CLOSED), S.OPEN, "x") == (
        "a review cannot go from closed to open; from closed it can go to nothing: it is final"
    )


def test_a_blank_reason_is_no_reason() -> None:
    with pytest.raises(TransitionRefusedError, match="needs a reason"):
        transition(opened(), Transition(to=S.CANCELLED, reason="   "), by="alice", now=NOW)


def test_approval_needs_findings_and_a_recommendation_and_the_required_sections() -> None:
    review = with_status(opened(), S.IN_REVIEW)
    assert approval_problems(review) == [
        "there are no findings yet (analysis.what_went_well, analysis.what_went_wrong or contributing_factors)",
        "there is no recommendation; add one, or say why none is needed in no_action_needed_reason",
        "the policy requires these sections, still empty: owner, analysis.what_went_wrong, contributing_factors",
        "the policy requires a measurable verification (metric, alert or recurrence) for critical incidents: add an "
        "action item with one, or say why no action is needed in no_action_needed_reason",
    ]
    with pytest.raises(TransitionRefusedError, match=r"^cannot approve: there are no findings"):
        transition(review, Transition(to=S.APPROVED), by="alice", now=NOW)
    assert approval_problems(ready_to_approve(review)) == []


def test_no_action_needed_with_a_reason_stands_in_for_recommendations() -> None:
    lenient = ReviewPolicy(required_sections=())
    review = with_status(opened(policy=lenient), S.IN_REVIEW)
    review = edited(review, analysis={"what_went_well": ["Failover worked within a minute"]})
    assert approval_problems(review) == [
        "there is no recommendation; add one, or say why none is needed in no_action_needed_reason",
        "the policy requires a measurable verification (metric, alert or recurrence) for critical incidents: add an "
        "action item with one, or say why no action is needed in no_action_needed_reason",
    ]
    review = edited(review, no_action_needed_reason="Failover worked as designed; nothing to change")
    moved, _ = transition(review, Transition(to=S.APPROVED), by="alice", now=NOW)
    assert moved.status is S.APPROVED


def test_required_sections_come_from_the_policy_stored_on_the_record() -> None:
    strict = ReviewPolicy(required_sections=("participants", "analysis.resource_allocation", "gaps", "timeline"))
    review = ready_to_approve(with_status(opened(incident(timeline=()), policy=strict), S.IN_REVIEW))
    assert review.required_sections == ["participants", "analysis.resource_allocation", "gaps", "timeline"]
    assert approval_problems(review) == [
        "the policy requires these sections, still empty: participants, analysis.resource_allocation, gaps, timeline"
    ]
    review = edited(
        review,
        participants=[{"name": "Bob", "function": "operations"}],
        analysis={"resource_allocation": "  "},  # blank text is not filled in
        gaps={"training": ["Nobody had run the failover runbook"]},
    )
    assert approval_problems(review) == [
        "the policy requires these sections, still empty: analysis.resource_allocation, timeline"
    ]


def test_closing_with_unfinished_action_items_needs_a_waiver_with_a_reason() -> None:
    review = with_status(with_item(with_item(opened()), title="Runbook"), S.PUBLISHED)
    with pytest.raises(TransitionRefusedError, match=r"unfinished \(AI-1, AI-2\)"):
        transition(review, Transition(to=S.CLOSED), by="alice", now=NOW)
    with pytest.raises(TransitionRefusedError, match="waiving unfinished action items needs a reason"):
        transition(review, Transition(to=S.CLOSED, waive_open_action_items=True), by="alice", now=NOW)
    closed, _ = transition(
        review,
        Transition(to=S.CLOSED, reason="Tracked in the platform roadmap", waive_open_action_items=True),
        by="carol",
        now=NOW,
    )
    assert closed.status is S.CLOSED
    assert closed.action_items_waiver is not None
    assert (closed.action_items_waiver.reason, closed.action_items_waiver.by) == (
        "Tracked in the platform roadmap",
        "carol",
    )


def test_finished_action_items_close_without_a_waiver() -> None:
    review = with_item(with_item(opened()), title="Runbook")
    review = item_updated(review, "AI-1", ActionItemEdit(status=ActionItemStatus.DONE), by="a")
    review = item_updated(
        review, "AI-2", ActionItemEdit(status=ActionItemStatus.WONT_DO, status_reason="Superseded"), by="a"
    )
    closed, _ = transition(with_status(review, S.PUBLISHED), Transition(to=S.CLOSED), by="alice", now=NOW)
    assert closed.status is S.CLOSED
    assert closed.action_items_waiver is None
