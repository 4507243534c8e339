"""Follow-up events published by the follow-up service on ``followups.events`` (key: ``review_id``).

Each event is the firing of one durable timer. Its ``event_id`` is derived from the timer id and its
``occurred_at`` is the time the timer was due (not when a replica got round to firing it), so an event that is
published again after a crash is byte for byte the same and consumers recognise it by its ``event_id``.
"""

from typing import Annotated, Literal
from uuid import UUID, uuid5

from pydantic import Field, TypeAdapter

from schemas.base import Event, Text, utc_datetime
from schemas.incident import Severity
from schemas.review import ActionItemPriority
from schemas.verification import Evidence, Verdict, VerificationPlan

# Fixed namespace: a timer yields the same event id on every replica and every re-fire.
FOLLOWUP_EVENT_NAMESPACE = UUID("8d3c7a52-4b6e-4f0e-9a1d-6c2f5e8b9a14")

Subject = Literal["review", "action_item"]


def followup_event_id(timer_id: str) -> UUID:
    """Deterministic: the event announcing a timer always has this id, whoever fires it and however often."""
    return uuid5(FOLLOWUP_EVENT_NAMESPACE, timer_id)


class FollowupEvent(Event):
    """What every follow-up event says: which review, which timer fired, and who is asked to act."""

    schema_version: Literal[1] = 1
    review_id: Text = Field(min_length=1)
    timer_id: Text = Field(min_length=1, description="The durable timer that fired; event_id is derived from it")
    incident_key: Text
    title: Text = Field(description="The review's title")
    severity: Severity
    team: Text | None = None
    owner: Text | None = Field(default=None, description="Who is asked to act: the review's or the item's owner")


class ActionItemFields(FollowupEvent):
    action_item_id: Text | None = Field(default=None, description="Set when the subject is an action item")
    action_item_title: Text | None = None
    priority: ActionItemPriority | None = Field(default=None, description="The action item's priority, if any")


class ReminderDue(ActionItemFields):
    """A due date is near: the review or the action item is due in ``before_seconds``."""

    type: Literal["ReminderDue"] = "ReminderDue"
    subject: Subject
    due_at: utc_datetime
    before_seconds: int = Field(gt=0, description="How long before the due date this reminder is sent")


class ReviewOverdue(FollowupEvent):
    """The review was not published by its due date."""

    type: Literal["ReviewOverdue"] = "ReviewOverdue"
    due_at: utc_datetime


class ActionItemOverdue(ActionItemFields):
    """An action item is still open at its due date."""

    type: Literal["ActionItemOverdue"] = "ActionItemOverdue"
    action_item_id: Text = Field(min_length=1)
    due_at: utc_datetime


class Escalated(ActionItemFields):
    """Still overdue ``overdue_seconds`` after the due date: escalated to ``target`` (a role, e.g. ``team_lead``)."""

    type: Literal["Escalated"] = "Escalated"
    subject: Subject
    level: int = Field(ge=1, description="1 for the first escalation level, 2 for the next...")
    target: Text = Field(min_length=1)
    due_at: utc_datetime
    overdue_seconds: int = Field(gt=0)


class EffectivenessCheckDue(FollowupEvent):
    """Time to ask whether the changes worked: every action item was finished ``after_seconds`` ago."""

    type: Literal["EffectivenessCheckDue"] = "EffectivenessCheckDue"
    action_items_done_at: utc_datetime
    after_seconds: int = Field(gt=0)
    done_action_item_ids: tuple[Text, ...] = Field(min_length=1)


class RemediationVerified(ActionItemFields):
    """Follow-up evaluated an action item's verification at the end of its window: the verdict and its evidence.

    One event per attempt (its timer id names the attempt), so a re-fire after a crash repeats the same event id.
    ``inconclusive`` is retried with backoff: a later attempt may answer; it never becomes ``effective`` by itself.
    """

    type: Literal["RemediationVerified"] = "RemediationVerified"
    action_item_id: Text = Field(min_length=1)
    verification: VerificationPlan
    verdict: Verdict
    evidence: Evidence
    attempt: int = Field(ge=1, description="1 for the first evaluation, 2 for the first retry of an inconclusive one")


AnyFollowupEvent = Annotated[
    ReminderDue | ReviewOverdue | ActionItemOverdue | Escalated | EffectivenessCheckDue | RemediationVerified,
    Field(discriminator="type"),
]
FOLLOWUP_EVENT_TYPES: tuple[str, ...] = (
    "ReminderDue",
    "ReviewOverdue",
    "ActionItemOverdue",
    "Escalated",
    "EffectivenessCheckDue",
    "RemediationVerified",
)
followup_event_adapter: TypeAdapter[AnyFollowupEvent] = TypeAdapter(AnyFollowupEvent)
