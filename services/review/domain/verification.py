"""Verified remediation on the record: which verdict an action item keeps, who may record one, what policy asks.

- Follow-up's judge publishes one ``RemediationVerified`` per attempt. The item keeps the verdict of its latest
  attempt: the same event again (same id) or an older attempt changes nothing; an ``inconclusive`` attempt never
  replaces an ``effective`` or ``not_effective`` verdict (the judge answered once; failing to answer later does not
  undo the answer). A verdict a person recorded stands: the judge never replaces it.
- A person records a verdict only on a done item whose verification is ``manual``; measurable ones are judged by
  follow-up. Separation of implementer and verifier: the item's owner may not judge their own remediation, and when
  the plan names a verifier only they may; an admin may always.
- ``not_effective`` reopens the lesson (``Review.reopening``): a closed review goes back to ``published``, and, as the
  policy says, a new action item is needed before it closes again.
- Approval: when the policy requires it for the review's severity, at least one action item (not ``wont_do``) needs a
  measurable verification; the refusal names the items that lack one.
- A later recurrence counts against the earlier review's items verified effective (``recurred_after_verification``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from schemas import (
    ActionItemStatus,
    ActionItemUpdated,
    RemediationVerified,
    ReviewEvent,
    ReviewStatus,
    ReviewStatusChanged,
    VerificationRecorded,
)
from schemas.verification import Evidence, Verdict, VerificationMethod
from services.review.domain.limits import check_within_limits
from services.review.domain.record import (
    ActionItem,
    RecurredAfterVerification,
    Reopening,
    Review,
    Section,
    StatusChange,
    VerificationResult,
    event_id_for,
)
from services.review.domain.refusals import (
    NotEditableError,
    ReviewRefusedError,
    UnknownActionItemError,
)

JUDGE = "followup"
MAX_EVIDENCE_CHARS = 2_000
MAX_EVIDENCE_LINKS = 20

# Reviews that were never needed or were cancelled keep a verdict but are not reopened by it.
NOT_REOPENED = frozenset({ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED})

EvidenceLink = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000, pattern=r"^https?://\S+$")]


class VerificationRefusedError(ReviewRefusedError):
    """A verdict cannot be recorded on this item now (no manual verification, not done yet)."""

    code = "verification_refused"


class NotTheVerifierError(ReviewRefusedError):
    """The caller may not judge this remediation: its owner, or not the verifier the plan names."""

    code = "not_the_verifier"


class ManualVerdict(Section):
    """What a verifier records: the verdict and the evidence for it (text, links)."""

    verdict: Verdict
    evidence: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EVIDENCE_CHARS)] = (
        Field(description="What was checked and what was found")
    )
    links: Annotated[list[EvidenceLink], Field(max_length=MAX_EVIDENCE_LINKS)] = Field(
        default_factory=list, description="http(s) links to the evidence (dashboards, tickets, reports)"
    )


@dataclass(frozen=True)
class Recorded:
    """The review with the verdict recorded, and the events announcing it (``VerificationRecorded`` first)."""

    review: Review
    events: tuple[ReviewEvent, ...]
    verdict: Verdict
    reopened: bool


@dataclass(frozen=True)
class Unchanged:
    """The verdict was not recorded, and why (a duplicate, an older attempt...): nothing to store or announce."""

    reason: str


def _same_person(one: str | None, other: str | None) -> bool:
    return one is not None and other is not None and one.strip().casefold() == other.strip().casefold()


def _item(review: Review, item_id: str) -> ActionItem:
    item = review.action_item(item_id)
    if item is None:
        raise UnknownActionItemError(f"review {review.id} has no action item {item_id}")
    return item


def why_judged_verdict_is_ignored(current: VerificationResult | None, event: RemediationVerified) -> str | None:
    """None when the judge's verdict replaces the item's current one; else why it does not."""
    if current is None:
        return None
    if current.event_id == str(event.event_id):
        return "this verdict is recorded already"
    if current.attempt is None:
        return f"the verdict {current.recorded_by} recorded stands"
    if event.attempt <= current.attempt:
        return f"attempt {event.attempt} is not later than the recorded attempt {current.attempt}"
    if event.verdict is Verdict.INCONCLUSIVE and current.verdict is not Verdict.INCONCLUSIVE:
        return f"an inconclusive attempt does not replace the {current.verdict} verdict of attempt {current.attempt}"
    return None


def record_judged_verdict(
    review: Review, event: RemediationVerified, *, now: datetime, new_item_required: bool
) -> Recorded | Unchanged:
    """Follow-up's verdict on one of the review's items, if it is the latest that counts."""
    item = _item(review, event.action_item_id)
    why_not = why_judged_verdict_is_ignored(item.verification_result, event)
    if why_not is not None:
        return Unchanged(why_not)
    result = VerificationResult(
        verdict=event.verdict,
        evidence=event.evidence,
        attempt=event.attempt,
        recorded_at=now,
        recorded_by=JUDGE,
        event_id=str(event.event_id),
    )
    return _record(review, item, result, by=None, now=now, new_item_required=new_item_required)


def check_may_record_verdict(item: ActionItem, *, by: str, admin: bool) -> None:
    """Separation of implementer and verifier; an admin may always record."""
    if admin:
        return
    if _same_person(by, item.owner):
        raise NotTheVerifierError(
            f"{by} owns {item.id} and may not verify their own remediation: "
            "its verifier or an admin records the verdict"
        )
    verifier = item.verification.verifier if item.verification is not None else None
    if verifier is not None and not _same_person(by, verifier):
        raise NotTheVerifierError(f"only {item.id}'s verifier ({verifier}) or an admin may record its verdict")


def record_manual_verdict(
    review: Review,
    item_id: str,
    verdict: ManualVerdict,
    *,
    by: str,
    admin: bool,
    now: datetime,
    new_item_required: bool,
) -> Recorded:
    """A person's verdict on a done item whose verification is manual; refusals say why not."""
    item = _item(review, item_id)
    if review.status in NOT_REOPENED:
        raise NotEditableError(f"no verdict can be recorded while the review is {review.status}")
    if item.verification is None or item.verification.method is not VerificationMethod.MANUAL:
        method = "no verification" if item.verification is None else f"a {item.verification.method} verification"
        raise VerificationRefusedError(
            f"{item_id} has {method}: a person records verdicts on manual verifications only (follow-up judges the "
            "measurable ones); give it a manual verification first if a person is to judge it"
        )
    if item.status is not ActionItemStatus.DONE:
        raise VerificationRefusedError(f"{item_id} is {item.status}: a remediation is verified once it is done")
    check_may_record_verdict(item, by=by, admin=admin)
    evidence = Evidence(
        method=VerificationMethod.MANUAL,
        judged_by=by,
        judged_at=now,
        detail=verdict.evidence,
        links=tuple(verdict.links),
    )
    result = VerificationResult(verdict=verdict.verdict, evidence=evidence, recorded_at=now, recorded_by=by)
    return _record(review, item, result, by=by, now=now, new_item_required=new_item_required)


def _reopened(review: Review, item_id: str, now: datetime, new_item_required: bool) -> Reopening:
    current = review.reopening
    if current is not None and current.active:
        if item_id in current.action_item_ids:
            return current
        ids = [*current.action_item_ids, item_id]
        return current.model_copy(update={"action_item_ids": ids, "reason": _reopening_reason(ids)})
    return Reopening(
        action_item_ids=[item_id],
        reason=_reopening_reason([item_id]),
        at=now,
        new_action_item_required=new_item_required,
        action_items_before=len(review.action_items),
    )


def _reopening_reason(item_ids: Sequence[str]) -> str:
    verb = "was" if len(item_ids) == 1 else "were"
    return f"{', '.join(item_ids)} {verb} verified not effective"


def _record(
    review: Review,
    item: ActionItem,
    result: VerificationResult,
    *,
    by: str | None,
    now: datetime,
    new_item_required: bool,
) -> Recorded:
    version = review.version + 1
    judged = item.model_copy(update={"verification_result": result, "updated_at": now})
    update: dict[str, object] = {
        "action_items": [judged if other.id == item.id else other for other in review.action_items],
        "version": version,
        "updated_at": now,
        "updated_by": by,
    }
    reopened = result.verdict is Verdict.NOT_EFFECTIVE and review.status not in NOT_REOPENED
    status_changed: list[ReviewEvent] = []
    if reopened:
        reopening = _reopened(review, item.id, now, new_item_required)
        update["reopening"] = reopening
        if review.status is ReviewStatus.CLOSED:
            reason = f"reopened: {reopening.reason}"
            update["status"] = ReviewStatus.PUBLISHED
            update["status_history"] = [
                *review.status_history,
                StatusChange(
                    from_status=ReviewStatus.CLOSED, to_status=ReviewStatus.PUBLISHED, reason=reason, by=by, at=now
                ),
            ]
            status_changed.append(
                ReviewStatusChanged(
                    event_id=event_id_for(review.id, "status_changed", version),
                    occurred_at=now,
                    review_id=review.id,
                    version=version,
                    from_status=ReviewStatus.CLOSED,
                    to_status=ReviewStatus.PUBLISHED,
                    reason=reason,
                    changed_by=by,
                )
            )
    edited = review.model_copy(update=update)
    check_within_limits(review, edited)
    recorded = VerificationRecorded(
        event_id=event_id_for(review.id, "verification_recorded", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        action_item_id=item.id,
        title=item.title,
        verdict=result.verdict,
        evidence=result.evidence,
        reopened=reopened,
    )
    return Recorded(edited, (recorded, *status_changed), result.verdict, reopened)


def missing_measurable_verification(review: Review) -> str | None:
    """Why approval waits for a measurable verification (the policy requires one for this severity), or None."""
    if not review.measurable_verification_required:
        return None
    items = [item for item in review.action_items if item.status is not ActionItemStatus.WONT_DO]
    if any(item.verification is not None and item.verification.measurable for item in items):
        return None
    if not items:
        if (review.no_action_needed_reason or "").strip() and not review.action_items:
            return None
        return (
            f"the policy requires a measurable verification (metric, alert or recurrence) for "
            f"{review.incident.severity} incidents: add an action item with one, or say why no action is needed in "
            "no_action_needed_reason"
        )
    lacking = ", ".join(item.id for item in items)
    return (
        f"the policy requires at least one measurable verification (metric, alert or recurrence) for "
        f"{review.incident.severity} incidents; these action items have none: {lacking}"
    )


def reopening_problem(review: Review) -> str | None:
    """Why a reopened review cannot close again yet, or None."""
    reopening = review.reopening
    if reopening is None or not reopening.active or not reopening.new_action_item_required:
        return None
    # Items are numbered and never removed: one more than at the reopening is a new one.
    if len(review.action_items) > reopening.action_items_before:
        return None
    return (
        f"the lesson was reopened ({reopening.reason}): the policy requires a new action item to address it "
        "before the review closes again"
    )


def settled(review: Review, now: datetime) -> Reopening | None:
    """The review's reopening once the review is closed again."""
    reopening = review.reopening
    if reopening is None or not reopening.active:
        return reopening
    return reopening.model_copy(update={"settled_at": now})


def verified_effective(review: Review) -> list[ActionItem]:
    """The items whose remediation was verified effective and has not recurred yet."""
    return [
        item
        for item in review.action_items
        if item.verification_result is not None
        and item.verification_result.verdict is Verdict.EFFECTIVE
        and item.recurred_after_verification is None
    ]


def mark_recurred_after_verification(
    earlier: Review, recurrence: Review, now: datetime
) -> tuple[Review, tuple[ActionItemUpdated, ...]]:
    """The earlier review (already at its linked version) with its effective items marked, and one event per item."""
    marked_ids = {item.id for item in verified_effective(earlier)}
    if not marked_ids:
        return earlier, ()
    mark = RecurredAfterVerification(review_id=recurrence.id, incident_key=recurrence.incident_key, at=now)
    items = [
        item.model_copy(update={"recurred_after_verification": mark, "updated_at": now})
        if item.id in marked_ids
        else item
        for item in earlier.action_items
    ]
    events = tuple(
        ActionItemUpdated(
            event_id=event_id_for(earlier.id, f"recurred_after_verification:{item.id}", earlier.version),
            occurred_at=now,
            review_id=earlier.id,
            version=earlier.version,
            **item.event_fields(),
            changed=("recurred_after_verification",),
            status_reason=item.status_reason,
        )
        for item in items
        if item.id in marked_ids
    )
    return earlier.model_copy(update={"action_items": items}), events
