"""What follow-up did and will do for one review, as review learns it from ``followups.events``.

Services stay independent: review never reads follow-up's collections; it keeps this view beside the record
(``review_followups``, one document per review). Applying an event is pure and idempotent: an event already applied
(its id is remembered) changes nothing, so a redelivery or a re-fired timer is harmless. Every list is bounded (the
latest entries are kept), so a review followed up for years stays a small document.

"Will do" is what the record says is still ahead: items done with a verification and no conclusive verdict yet
(``awaiting_verification``, filled in when the view is read, from the review).
"""

from datetime import datetime
from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas import (
    ActionItemOverdue,
    ActionItemStatus,
    AnyFollowupEvent,
    EffectivenessCheckDue,
    Escalated,
    RemediationVerified,
    ReminderDue,
    ReviewOverdue,
)
from schemas.verification import Verdict, VerificationMethod
from services.review.domain.record import Review, UtcTime

MAX_REMEMBERED_EVENTS = 500
MAX_REMINDERS = 50
MAX_ESCALATIONS = 20
MAX_OVERDUE_ITEMS = 200
MAX_VERIFICATION_ATTEMPTS = 50


class ViewPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReminderSent(ViewPart):
    subject: str = Field(description="review or action_item")
    action_item_id: str | None = None
    owner: str | None = Field(default=None, description="Who was reminded")
    due_at: UtcTime
    before_seconds: int
    sent_at: UtcTime = Field(description="When the reminder was due to be sent")


class OverdueItem(ViewPart):
    action_item_id: str
    owner: str | None = None
    overdue_since: UtcTime


class Escalation(ViewPart):
    subject: str
    action_item_id: str | None = None
    level: int
    target: str
    at: UtcTime


class EffectivenessCheck(ViewPart):
    due_at: UtcTime = Field(description="When follow-up asked whether the changes worked")
    action_items_done_at: UtcTime
    done_action_item_ids: list[str]


class VerificationAttempt(ViewPart):
    action_item_id: str
    attempt: int
    method: VerificationMethod
    verdict: Verdict
    judged_at: UtcTime
    judged_by: str
    detail: str = ""
    event_id: str


class FollowupView(BaseModel):
    """The follow-up of one review: reminders sent, overdue, escalation, the effectiveness check, verifications."""

    model_config = ConfigDict(extra="ignore")

    review_id: str
    version: int = Field(default=0, ge=0, description="Incremented by every event applied (for safe concurrent writes)")
    reminders: list[ReminderSent] = Field(default_factory=list, description=f"The latest {MAX_REMINDERS}, oldest first")
    review_overdue_since: UtcTime | None = Field(default=None, description="The review passed its due date unpublished")
    overdue_action_items: list[OverdueItem] = Field(default_factory=list)
    escalation_level: int = Field(default=0, ge=0, description="The highest escalation level reached (0: none)")
    escalation_target: str | None = Field(default=None, description="Who the highest level escalated to")
    escalations: list[Escalation] = Field(default_factory=list, description=f"The latest {MAX_ESCALATIONS}")
    effectiveness_check: EffectivenessCheck | None = None
    verification_attempts: list[VerificationAttempt] = Field(
        default_factory=list, description=f"The latest {MAX_VERIFICATION_ATTEMPTS} verdicts follow-up sent"
    )
    awaiting_verification: list[str] = Field(
        default_factory=list,
        description="Done items whose measurable verification follow-up has not answered conclusively yet",
    )
    updated_at: UtcTime | None = None
    applied_event_ids: list[str] = Field(default_factory=list, exclude=True)

    def to_document(self) -> dict[str, object]:
        document = self.model_dump(mode="python", exclude={"review_id", "awaiting_verification"})
        document["_id"] = self.review_id
        document["applied_event_ids"] = self.applied_event_ids
        return document

    @classmethod
    def from_document(cls, document: dict[str, object]) -> Self:
        fields = dict(document)
        fields["review_id"] = fields.pop("_id")
        return cls.model_validate(fields)


T = TypeVar("T")


def _latest(entries: list[T], entry: T, maximum: int) -> list[T]:
    return [*entries, entry][-maximum:]


def apply_followup_event(view: FollowupView, event: AnyFollowupEvent, now: datetime) -> FollowupView | None:
    """The view with ``event`` applied, or None when it was applied already (nothing to write)."""
    event_id = str(event.event_id)
    if event_id in view.applied_event_ids:
        return None
    update: dict[str, object] = {
        "version": view.version + 1,
        "updated_at": now,
        "applied_event_ids": _latest(view.applied_event_ids, event_id, MAX_REMEMBERED_EVENTS),
    }
    match event:
        case ReminderDue():
            reminder = ReminderSent(
                subject=event.subject,
                action_item_id=event.action_item_id,
                owner=event.owner,
                due_at=event.due_at,
                before_seconds=event.before_seconds,
                sent_at=event.occurred_at,
            )
            update["reminders"] = _latest(view.reminders, reminder, MAX_REMINDERS)
        case ReviewOverdue():
            update["review_overdue_since"] = min(event.due_at, view.review_overdue_since or event.due_at)
        case ActionItemOverdue():
            others = [item for item in view.overdue_action_items if item.action_item_id != event.action_item_id]
            known = next((i for i in view.overdue_action_items if i.action_item_id == event.action_item_id), None)
            since = min(event.due_at, known.overdue_since) if known is not None else event.due_at
            overdue = OverdueItem(action_item_id=event.action_item_id, owner=event.owner, overdue_since=since)
            update["overdue_action_items"] = _latest(others, overdue, MAX_OVERDUE_ITEMS)
        case Escalated():
            escalation = Escalation(
                subject=event.subject,
                action_item_id=event.action_item_id,
                level=event.level,
                target=event.target,
                at=event.occurred_at,
            )
            update["escalations"] = _latest(view.escalations, escalation, MAX_ESCALATIONS)
            if event.level >= view.escalation_level:
                update["escalation_level"], update["escalation_target"] = event.level, event.target
        case EffectivenessCheckDue():
            update["effectiveness_check"] = EffectivenessCheck(
                due_at=event.occurred_at,
                action_items_done_at=event.action_items_done_at,
                done_action_item_ids=list(event.done_action_item_ids),
            )
        case RemediationVerified():
            attempt = VerificationAttempt(
                action_item_id=event.action_item_id,
                attempt=event.attempt,
                method=event.evidence.method,
                verdict=event.verdict,
                judged_at=event.evidence.judged_at,
                judged_by=event.evidence.judged_by,
                detail=event.evidence.detail,
                event_id=event_id,
            )
            update["verification_attempts"] = _latest(view.verification_attempts, attempt, MAX_VERIFICATION_ATTEMPTS)
    return view.model_copy(update=update)


def awaiting_verification(review: Review) -> list[str]:
    """Done items with a measurable verification whose verdict is missing or inconclusive: follow-up will judge them."""
    return [
        item.id
        for item in review.action_items
        if item.status is ActionItemStatus.DONE
        and item.verification is not None
        and item.verification.measurable
        and (item.verification_result is None or item.verification_result.verdict is Verdict.INCONCLUSIVE)
    ]


def followup_of(review: Review, view: FollowupView | None) -> FollowupView:
    """What the UI and the API show: the stored view (or an empty one) with what is still ahead."""
    shown = view or FollowupView(review_id=review.id)
    return shown.model_copy(update={"awaiting_verification": awaiting_verification(review)})
