"""Verified remediation in the domain: which verdict an item keeps, who may record one, reopening, the policy."""

from datetime import timedelta

import pytest

from schemas import (
    ActionItemAdded,
    ActionItemStatus,
    ActionItemUpdated,
    ReviewStatus,
    ReviewStatusChanged,
    Severity,
    Verdict,
    VerificationMethod,
    VerificationRecorded,
)
from services.review.domain.editing import ActionItemDraft, ActionItemEdit, add_action_item, update_action_item
from services.review.domain.policy import ReviewPolicy, VerificationRules
from services.review.domain.record import Review
from services.review.domain.recurrence import link_recurrence
from services.review.domain.refusals import TransitionRefusedError
from services.review.domain.verification import (
    ManualVerdict,
    NotTheVerifierError,
    Recorded,
    Unchanged,
    VerificationRefusedError,
    record_judged_verdict,
    record_manual_verdict,
)
from services.review.domain.workflow import Transition, approval_problems, transition
from tests.support.verification import METRIC_CHECK, remediation_verified
from tests.unit.review.builders import NOW, edited, incident, opened, ready_to_approve, with_item, with_status

LATER = NOW + timedelta(days=30)
MANUAL_CHECK = {"method": "manual", "verifier": "victor"}


def published() -> Review:
    """A critical review, approved with a done item (AI-1, owner erin) verified by a metric, and published."""
    review = ready_to_approve(with_status(opened(), ReviewStatus.IN_REVIEW))
    for to in (ReviewStatus.APPROVED, ReviewStatus.PUBLISHED):
        review = transition(review, Transition(to=to), by="alice", now=NOW)[0]
    return review


def judged(review: Review, verdict: Verdict, attempt: int = 1, *, new_item_required: bool = True) -> Recorded:
    event = remediation_verified(review.id, review.incident_key, verdict=verdict, attempt=attempt)
    outcome = record_judged_verdict(review, event, now=LATER, new_item_required=new_item_required)
    assert isinstance(outcome, Recorded), outcome
    return outcome


def test_the_verification_travels_on_action_item_events_and_can_be_changed_or_removed() -> None:
    draft = ActionItemDraft.model_validate({"title": "Add backoff", "verification": METRIC_CHECK})
    review, added = add_action_item(opened(), draft, by="alice", now=NOW)
    assert isinstance(added, ActionItemAdded)
    assert added.verification is not None
    assert added.verification.method is VerificationMethod.METRIC
    change = update_action_item(
        review, "AI-1", ActionItemEdit.model_validate({"verification": MANUAL_CHECK}), by="alice", now=NOW
    )
    assert change is not None
    assert isinstance(change[1], ActionItemUpdated)
    assert change[1].changed == ("verification",)
    assert change[1].verification is not None
    assert change[1].verification.method is VerificationMethod.MANUAL
    cleared = update_action_item(
        change[0], "AI-1", ActionItemEdit.model_validate({"verification": None}), by="alice", now=NOW
    )
    assert cleared is not None
    assert cleared[0].action_items[0].verification is None


def test_a_verdict_from_follow_up_is_recorded_on_the_item_and_announced() -> None:
    review = published()
    recorded = judged(review, Verdict.EFFECTIVE)
    item = recorded.review.action_items[0]
    assert item.verification_result is not None
    assert (item.verification_result.verdict, item.verification_result.attempt) == (Verdict.EFFECTIVE, 1)
    assert item.verification_result.evidence.observed == 3.2
    assert item.verification_result.recorded_by == "followup"
    assert recorded.review.version == review.version + 1
    assert recorded.review.reopening is None
    [event] = recorded.events
    assert isinstance(event, VerificationRecorded)
    assert (event.action_item_id, event.verdict, event.reopened, event.version) == (
        "AI-1",
        Verdict.EFFECTIVE,
        False,
        review.version + 1,
    )


def test_the_same_event_twice_and_an_older_attempt_change_nothing() -> None:
    review = judged(published(), Verdict.INCONCLUSIVE, attempt=1).review
    review = judged(review, Verdict.EFFECTIVE, attempt=2).review
    again = remediation_verified(review.id, review.incident_key, verdict=Verdict.EFFECTIVE, attempt=2)
    assert record_judged_verdict(review, again, now=LATER, new_item_required=True) == Unchanged(
        "this verdict is recorded already"
    )
    older = remediation_verified(review.id, review.incident_key, verdict=Verdict.INCONCLUSIVE, attempt=1)
    outcome = record_judged_verdict(review, older, now=LATER, new_item_required=True)
    assert outcome == Unchanged("attempt 1 is not later than the recorded attempt 2")


def test_inconclusive_never_replaces_a_conclusive_verdict() -> None:
    review = judged(published(), Verdict.NOT_EFFECTIVE, attempt=2).review
    later = remediation_verified(review.id, review.incident_key, verdict=Verdict.INCONCLUSIVE, attempt=3)
    outcome = record_judged_verdict(review, later, now=LATER, new_item_required=True)
    assert isinstance(outcome, Unchanged)
    assert "does not replace the not_effective verdict of attempt 2" in outcome.reason


def test_not_effective_reopens_a_closed_review_which_needs_a_new_action_item_to_close_again() -> None:
    review = transition(published(), Transition(to=ReviewStatus.CLOSED), by="alice", now=NOW)[0]
    recorded = judged(review, Verdict.NOT_EFFECTIVE)
    reopened = recorded.review
    assert recorded.reopened
    assert reopened.status is ReviewStatus.PUBLISHED
    assert reopened.reopening is not None
    assert (reopened.reopening.action_item_ids, reopened.reopening.new_action_item_required) == (["AI-1"], True)
    verdict, moved = recorded.events
    assert isinstance(verdict, VerificationRecorded)
    assert verdict.reopened
    assert isinstance(moved, ReviewStatusChanged)
    assert (moved.from_status, moved.to_status, moved.reason) == (
        ReviewStatus.CLOSED,
        ReviewStatus.PUBLISHED,
        "reopened: AI-1 was verified not effective",
    )
    assert moved.version == verdict.version == reopened.version
    assert reopened.status_history[-1].reason == "reopened: AI-1 was verified not effective"

    with pytest.raises(TransitionRefusedError, match=r"^cannot close: the lesson was reopened \(AI-1 was verified"):
        transition(reopened, Transition(to=ReviewStatus.CLOSED), by="alice", now=LATER)
    draft = ActionItemDraft(title="Cap retries per order", status=ActionItemStatus.DONE)
    fixed = add_action_item(reopened, draft, by="alice", now=LATER + timedelta(hours=1))[0]
    closed = transition(fixed, Transition(to=ReviewStatus.CLOSED), by="alice", now=LATER + timedelta(hours=2))[0]
    assert closed.reopening is not None
    assert closed.reopening.settled_at == LATER + timedelta(hours=2)


def test_the_policy_can_let_a_reopened_review_close_without_a_new_item() -> None:
    review = judged(published(), Verdict.NOT_EFFECTIVE, new_item_required=False).review
    assert review.status is ReviewStatus.PUBLISHED  # it was not closed: it stays where it was, flagged
    assert review.reopening is not None
    closed, _ = transition(review, Transition(to=ReviewStatus.CLOSED), by="alice", now=LATER)
    assert closed.status is ReviewStatus.CLOSED


def test_closing_lists_every_reason_at_once() -> None:
    review = judged(with_item(published(), title="Unfinished"), Verdict.NOT_EFFECTIVE).review
    with pytest.raises(TransitionRefusedError) as refused:
        transition(review, Transition(to=ReviewStatus.CLOSED), by="alice", now=LATER)
    assert "action items are unfinished (AI-2)" in refused.value.message
    assert "the lesson was reopened (AI-1 was verified not effective)" in refused.value.message


def with_manual_check(owner: str = "erin", verifier: str | None = "victor") -> Review:
    review = published()
    edit = ActionItemEdit.model_validate({"verification": {**MANUAL_CHECK, "verifier": verifier}, "owner": owner})
    change = update_action_item(review, "AI-1", edit, by="alice", now=NOW)
    assert change is not None
    return change[0]


VERDICT = ManualVerdict(verdict=Verdict.EFFECTIVE, evidence="Retries stayed flat over two load tests", links=[])


def test_a_verifier_records_a_manual_verdict_with_evidence() -> None:
    verdict = ManualVerdict.model_validate(
        {"verdict": "effective", "evidence": " Load test passed ", "links": ["https://ci.example/run/1"]}
    )
    recorded = record_manual_verdict(
        with_manual_check(), "AI-1", verdict, by="victor", admin=False, now=LATER, new_item_required=True
    )
    result = recorded.review.action_items[0].verification_result
    assert result is not None
    assert (result.verdict, result.attempt, result.recorded_by) == (Verdict.EFFECTIVE, None, "victor")
    assert (result.evidence.detail, result.evidence.links, result.evidence.judged_by) == (
        "Load test passed",
        ("https://ci.example/run/1",),
        "victor",
    )
    assert recorded.review.updated_by == "victor"


def test_the_owner_may_not_verify_their_own_item_unless_admin() -> None:
    review = with_manual_check(owner="erin", verifier=None)
    with pytest.raises(NotTheVerifierError, match="Erin owns AI-1"):
        record_manual_verdict(review, "AI-1", VERDICT, by="Erin", admin=False, now=LATER, new_item_required=True)
    assert record_manual_verdict(review, "AI-1", VERDICT, by="erin", admin=True, now=LATER, new_item_required=True)
    # No verifier named: anyone else with the editor role may.
    assert record_manual_verdict(review, "AI-1", VERDICT, by="bob", admin=False, now=LATER, new_item_required=True)


def test_only_the_named_verifier_or_an_admin_may_record() -> None:
    review = with_manual_check(verifier="victor")
    with pytest.raises(NotTheVerifierError, match=r"only AI-1's verifier \(victor\) or an admin"):
        record_manual_verdict(review, "AI-1", VERDICT, by="bob", admin=False, now=LATER, new_item_required=True)
    assert record_manual_verdict(review, "AI-1", VERDICT, by="carol", admin=True, now=LATER, new_item_required=True)


def test_a_person_judges_only_done_items_with_a_manual_verification() -> None:
    with pytest.raises(VerificationRefusedError, match="AI-1 has a metric verification"):
        record_manual_verdict(published(), "AI-1", VERDICT, by="victor", admin=True, now=LATER, new_item_required=True)
    review = with_manual_check()
    change = update_action_item(review, "AI-1", ActionItemEdit(status=ActionItemStatus.IN_PROGRESS), by="a", now=NOW)
    assert change is not None
    with pytest.raises(VerificationRefusedError, match="AI-1 is in_progress"):
        record_manual_verdict(change[0], "AI-1", VERDICT, by="victor", admin=False, now=LATER, new_item_required=True)


def test_a_person_s_verdict_stands_over_the_judge() -> None:
    recorded = record_manual_verdict(
        with_manual_check(), "AI-1", VERDICT, by="victor", admin=False, now=LATER, new_item_required=True
    )
    event = remediation_verified(recorded.review.id, recorded.review.incident_key, verdict=Verdict.NOT_EFFECTIVE)
    outcome = record_judged_verdict(recorded.review, event, now=LATER, new_item_required=True)
    assert outcome == Unchanged("the verdict victor recorded stands")


def test_approval_of_a_critical_review_names_the_items_without_a_measurable_verification() -> None:
    review = edited(
        with_status(opened(), ReviewStatus.IN_REVIEW),
        owner="alice",
        analysis={"what_went_wrong": ["Retries were not throttled"]},
        contributing_factors=[{"category": "technology", "description": "No backoff"}],
        recommendations=["Add backoff"],
    )
    review = with_item(with_item(review, verification=MANUAL_CHECK), title="Dashboards")
    review = with_item(review, title="Rejected", status="wont_do", status_reason="no", verification=METRIC_CHECK)
    assert approval_problems(review) == [
        "the policy requires at least one measurable verification (metric, alert or recurrence) for critical "
        "incidents; these action items have none: AI-1, AI-2"
    ]
    with pytest.raises(TransitionRefusedError, match="these action items have none: AI-1, AI-2"):
        transition(review, Transition(to=ReviewStatus.APPROVED), by="alice", now=NOW)
    change = update_action_item(
        review, "AI-2", ActionItemEdit.model_validate({"verification": METRIC_CHECK}), by="alice", now=NOW
    )
    assert change is not None
    assert approval_problems(change[0]) == []


def test_the_policy_decides_which_severities_need_a_measurable_verification() -> None:
    assert opened().measurable_verification_required  # critical, by default
    assert not opened(incident(severity=Severity.HIGH)).measurable_verification_required
    policy = ReviewPolicy(verification=VerificationRules(measurable_required_for=frozenset({Severity.HIGH})))
    assert opened(incident(severity=Severity.HIGH), policy=policy).measurable_verification_required
    assert not opened(policy=policy).measurable_verification_required


def test_a_recurrence_counts_against_the_earlier_items_verified_effective() -> None:
    earlier = judged(published(), Verdict.EFFECTIVE).review
    earlier = with_item(earlier, title="Unverified", status="done")
    new = opened(incident("LATER", resolved_at=LATER))
    link = link_recurrence(new, earlier, LATER)
    marked = link.earlier.action_items[0]
    assert marked.recurred_after_verification is not None
    assert (marked.recurred_after_verification.review_id, marked.recurred_after_verification.at) == (new.id, LATER)
    assert link.earlier.action_items[1].recurred_after_verification is None
    [event] = link.earlier_items_recurred
    assert (event.action_item_id, event.changed, event.version) == (
        "AI-1",
        ("recurred_after_verification",),
        link.earlier.version,
    )
    assert event.event_id != link.earlier_updated.event_id
    # Marked once: a later recurrence does not mark it again.
    assert link_recurrence(opened(incident("AGAIN")), link.earlier, LATER).earlier_items_recurred == ()
