"""The review workflow: which status may follow which, and the rules a move must satisfy.

    open -> in_review -> approved -> published -> closed
    plus not_required (the policy's or a person's decision) and cancelled.

Moving backwards (sending a review back), cancelling, or declaring a review not required needs a reason, so the
history explains itself. Approval needs findings and at least one recommendation (or an explicit "no action needed"
with its reason) and every section the policy requires. Closing needs every action item finished, unless a reason
to waive the unfinished ones is given.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas import ReviewStatus, ReviewStatusChanged
from services.review.domain.limits import check_within_limits
from services.review.domain.record import Review, StatusChange, Waiver, event_id_for
from services.review.domain.refusals import TransitionRefusedError
from services.review.domain.verification import missing_measurable_verification, reopening_problem, settled

S = ReviewStatus
Guard = Literal["approval", "closing"]

# Not yet published. The due date is for publishing, so at or past it a review in one of these is overdue (approved
# but unpublished included); follow-up counts and escalates by the same rule (docs/overdue.md).
BEFORE_PUBLICATION = frozenset({S.OPEN, S.IN_REVIEW, S.APPROVED})


def is_overdue(review: Review, now: datetime) -> bool:
    """Due at or before ``now`` and not yet published."""
    return review.status in BEFORE_PUBLICATION and review.due_at is not None and review.due_at <= now


@dataclass(frozen=True)
class Move:
    reason_required: bool = False
    guard: Guard | None = None


ALLOWED: Mapping[ReviewStatus, Mapping[ReviewStatus, Move]] = {
    S.OPEN: {S.IN_REVIEW: Move(), S.NOT_REQUIRED: Move(reason_required=True), S.CANCELLED: Move(reason_required=True)},
    S.IN_REVIEW: {
        S.APPROVED: Move(guard="approval"),
        S.OPEN: Move(reason_required=True),
        S.CANCELLED: Move(reason_required=True),
    },
    S.APPROVED: {S.PUBLISHED: Move(), S.IN_REVIEW: Move(reason_required=True)},
    S.PUBLISHED: {S.CLOSED: Move(guard="closing")},
    S.CLOSED: {},
    # A person may decide a review is needed after all, or undo a cancellation.
    S.NOT_REQUIRED: {S.OPEN: Move(reason_required=True)},
    S.CANCELLED: {S.OPEN: Move(reason_required=True)},
}

# Where the sections can be edited; an approved review is frozen until sent back to in_review.
SECTIONS_EDITABLE = frozenset({S.OPEN, S.IN_REVIEW})
# Action items live on after approval: they are worked on while the review is published.
ACTION_ITEMS_EDITABLE = frozenset({S.OPEN, S.IN_REVIEW, S.APPROVED, S.PUBLISHED})


def allowed_targets(status: ReviewStatus) -> frozenset[ReviewStatus]:
    return frozenset(ALLOWED[status])


def section_filled(review: Review, section: str) -> bool:
    """Whether a section the policy can require has content."""
    if section.startswith("analysis."):
        value: object = getattr(review.analysis, section.removeprefix("analysis."))
    elif section == "gaps":
        value = review.gaps.process or review.gaps.technology or review.gaps.training
    else:
        value = getattr(review, section)
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


def approval_problems(review: Review) -> list[str]:
    """What stands between this review and approval; empty when it can be approved."""
    problems = []
    has_findings = review.analysis.what_went_well or review.analysis.what_went_wrong or review.contributing_factors
    if not has_findings:
        problems.append(
            "there are no findings yet (analysis.what_went_well, analysis.what_went_wrong or contributing_factors)"
        )
    if not review.recommendations and not (review.no_action_needed_reason or "").strip():
        problems.append("there is no recommendation; add one, or say why none is needed in no_action_needed_reason")
    missing = [section for section in review.required_sections if not section_filled(review, section)]
    if missing:
        problems.append(f"the policy requires these sections, still empty: {', '.join(missing)}")
    verification = missing_measurable_verification(review)
    if verification is not None:
        problems.append(verification)
    return problems


def refusal(
    review: Review, to: ReviewStatus, reason: str | None, *, waive_open_action_items: bool = False
) -> str | None:
    """Why ``review`` may not move to ``to`` now, or None if it may. Pure, so every pair can be tested."""
    current = review.status
    if to == current:
        return f"the review is already {current}"
    move = ALLOWED[current].get(to)
    if move is None:
        targets = ", ".join(sorted(ALLOWED[current])) or "nothing: it is final"
        return f"a review cannot go from {current} to {to}; from {current} it can go to {targets}"
    if move.reason_required and not reason:
        return f"going from {current} to {to} needs a reason"
    if move.guard == "approval":
        problems = approval_problems(review)
        return "cannot approve: " + "; ".join(problems) if problems else None
    if move.guard == "closing":
        return _closing_refusal(review, reason, waive_open_action_items)
    return None


def _closing_refusal(review: Review, reason: str | None, waive_open_action_items: bool) -> str | None:
    problems = []
    unfinished = [item.id for item in review.action_items if item.unfinished]
    if unfinished and not waive_open_action_items:
        problems.append(
            f"cannot close while action items are unfinished ({', '.join(unfinished)}): finish them, "
            "or waive them with waive_open_action_items and a reason"
        )
    elif unfinished and not reason:
        problems.append("waiving unfinished action items needs a reason")
    reopened = reopening_problem(review)
    if reopened is not None:
        problems.append(("cannot close: " if not problems else "") + reopened)
    return "; ".join(problems) or None


@dataclass(frozen=True)
class Transition:
    """A request to move a review: where to, why, and whether unfinished action items are knowingly left open."""

    to: ReviewStatus
    reason: str | None = None
    waive_open_action_items: bool = False


def transition(
    review: Review, request: Transition, *, by: str | None, now: datetime
) -> tuple[Review, ReviewStatusChanged]:
    """The review after the move and the event announcing it; ``TransitionRefusedError`` says why not."""
    reason = (request.reason or "").strip() or None
    why_not = refusal(review, request.to, reason, waive_open_action_items=request.waive_open_action_items)
    if why_not is not None:
        raise TransitionRefusedError(why_not)
    version = review.version + 1
    waiver = review.action_items_waiver
    if request.to == S.CLOSED and any(item.unfinished for item in review.action_items):
        waiver = Waiver(reason=reason or "", by=by, at=now)
    changed = review.model_copy(
        update={
            "status": request.to,
            "version": version,
            "updated_at": now,
            "updated_by": by,
            "action_items_waiver": waiver,
            "reopening": settled(review, now) if request.to == S.CLOSED else review.reopening,
            "status_history": [
                *review.status_history,
                StatusChange(from_status=review.status, to_status=request.to, reason=reason, by=by, at=now),
            ],
        }
    )
    check_within_limits(review, changed)
    event = ReviewStatusChanged(
        event_id=event_id_for(review.id, "status_changed", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        from_status=review.status,
        to_status=request.to,
        reason=reason,
        changed_by=by,
    )
    return changed, event
