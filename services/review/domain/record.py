"""The lessons-learned record (``Review``) and what opening one produces (the record and its ``ReviewOpened`` event).

Fields added later carry defaults, so records stored by an older version still load (how they are stored:
``services/review/documents.py``).
"""

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas import (
    ActionItemCategory,
    ActionItemPriority,
    ActionItemStatus,
    IncidentClosed,
    ReviewOpened,
    ReviewStatus,
    Severity,
)
from schemas.verification import Evidence, Verdict, VerificationPlan
from services.review.domain.policy import ReviewDecision


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+00:01 has no UTC form: a bad value, not a server error
        raise ValueError("the time is out of range once converted to UTC") from None


# Offset-aware times, kept in UTC so a write returns what a later read gives.
UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]

REVIEW_NAMESPACE = UUID("0b8f5a55-2f57-4c1d-8b0e-7d8f3a7f6c11")

SHORT_TEXT = 300
LONG_TEXT = 10_000
MAX_ENTRIES = 200

# One finding, recommendation or gap: a non-blank line of text.
Statement = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LONG_TEXT)]
Statements = Annotated[list[Statement], Field(max_length=MAX_ENTRIES)]


def review_id_for(incident_key: str) -> str:
    """One review per incident: the id is derived from the key, so every replica computes the same one."""
    return str(uuid5(REVIEW_NAMESPACE, incident_key))


def event_id_for(review_id: str, what: str, version: int) -> UUID:
    """An event's id follows from the change it announces, so a re-published event is recognisably the same."""
    return uuid5(REVIEW_NAMESPACE, f"{review_id}|{what}|{version}")


_NOISE = re.compile(r"[0-9a-f]{8,}|\d+")
_NOT_WORD = re.compile(r"[^\w#]+")


def normalised_title(title: str) -> str:
    """The title with what varies between occurrences of one problem removed (numbers, ids, case, punctuation).

    "Payments API returning 502s (INC 1234)" and "payments api returning 503s" both become
    "payments api returning #s inc #": the same problem seen twice.
    """
    lowered = _NOISE.sub("#", title.casefold())
    return " ".join(_NOT_WORD.sub(" ", lowered).split())


class Section(BaseModel):
    """A part of the record; rejects unknown fields so a typo in an edit is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class IncidentFacts(BaseModel):
    """What the paging tool said about the incident, kept as it was when the review opened."""

    incident_key: str
    source: str
    source_incident_id: str
    title: str
    severity: Severity
    source_severity: str | None = None
    service: str | None = None
    team: str | None = None
    started_at: UtcTime | None = None
    resolved_at: UtcTime
    url: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = None


class ParticipantFunction(StrEnum):
    IT = "it"
    SECURITY = "security"
    OPERATIONS = "operations"
    MANAGEMENT = "management"
    OTHER = "other"


class Participant(Section):
    name: str = Field(min_length=1, max_length=200)
    function: ParticipantFunction
    role: str | None = Field(default=None, max_length=200, description="e.g. incident commander, scribe")


class ReviewTimelineEntry(Section):
    """One moment of the incident: ``imported`` from the paging tool (read-only), or ``added`` by a reviewer."""

    id: str = Field(
        default="",
        max_length=20,
        description='"T-1", "T-2", ... within the review; records stored before ids existed get theirs when read',
    )
    at: UtcTime
    kind: str = Field(min_length=1, max_length=200, description="e.g. triggered, acknowledged, mitigated, note")
    message: str = Field(default="", max_length=LONG_TEXT)
    actor: str | None = Field(default=None, max_length=200)
    origin: Literal["imported", "added"] = "imported"


class Analysis(Section):
    what_went_well: Statements = Field(default_factory=list)
    what_went_wrong: Statements = Field(default_factory=list)
    response_effectiveness: str | None = Field(
        default=None, max_length=LONG_TEXT, description="How well the response procedures worked"
    )
    detection_and_prevention: str | None = Field(
        default=None, max_length=LONG_TEXT, description="How detection and prevention performed"
    )
    communication_and_coordination: str | None = Field(default=None, max_length=LONG_TEXT)
    resource_allocation: str | None = Field(default=None, max_length=LONG_TEXT)


class Gaps(Section):
    process: Statements = Field(default_factory=list)
    technology: Statements = Field(default_factory=list)
    training: Statements = Field(default_factory=list)


class FactorCategory(StrEnum):
    PROCESS = "process"
    TECHNOLOGY = "technology"
    TRAINING = "training"
    PEOPLE = "people"
    EXTERNAL = "external"


class ContributingFactor(Section):
    category: FactorCategory
    description: str = Field(min_length=1, max_length=LONG_TEXT)


class VerificationResult(Section):
    """The verdict an action item holds now and the evidence for it (``domain/verification.py`` decides which)."""

    verdict: Verdict
    evidence: Evidence
    attempt: int | None = Field(
        default=None, ge=1, description="Follow-up's evaluation attempt; null for a verdict a person recorded"
    )
    recorded_at: UtcTime
    recorded_by: str = Field(description='The person who recorded it, or "followup" for the judge')
    event_id: str | None = Field(default=None, description="The RemediationVerified event it came from, if any")


class RecurredAfterVerification(Section):
    """The problem came back after this item was verified effective: the verdict did not hold."""

    review_id: str = Field(description="The later review, whose incident recurred")
    incident_key: str
    at: UtcTime


class ActionItem(Section):
    id: str = Field(description='Assigned by the service: "AI-1", "AI-2", ... within the review')
    title: str = Field(min_length=1, max_length=SHORT_TEXT)
    description: str = Field(default="", max_length=LONG_TEXT)
    owner: str | None = Field(default=None, max_length=200)
    due_at: UtcTime | None = None
    priority: ActionItemPriority = ActionItemPriority.MEDIUM
    category: ActionItemCategory = ActionItemCategory.OTHER
    status: ActionItemStatus = ActionItemStatus.OPEN
    status_reason: str | None = Field(default=None, max_length=LONG_TEXT, description="Why it was marked won't do")
    ticket_url: str | None = Field(default=None, max_length=2_000, description="Link to the tracker's ticket")
    verification: VerificationPlan | None = Field(default=None, description="How the item proves it worked")
    verification_result: VerificationResult | None = Field(
        default=None, description="The latest verdict on the remediation, with its evidence"
    )
    recurred_after_verification: RecurredAfterVerification | None = None
    created_at: UtcTime
    updated_at: UtcTime

    @property
    def unfinished(self) -> bool:
        return self.status in (ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS)

    def event_fields(self) -> dict[str, Any]:
        """What every action item event states about the item (``ActionItemEvent``'s fields)."""
        return {
            "action_item_id": self.id,
            "title": self.title,
            "owner": self.owner,
            "due_at": self.due_at,
            "priority": self.priority,
            "category": self.category,
            "status": self.status,
            "verification": self.verification,
        }


class StatusChange(Section):
    from_status: ReviewStatus
    to_status: ReviewStatus
    reason: str | None = None
    by: str | None = None
    at: UtcTime


class Waiver(Section):
    """Closing with unfinished action items, accepted on purpose."""

    reason: str
    by: str | None = None
    at: UtcTime


class Recurrence(Section):
    """The earlier review whose incident came back as this one."""

    earlier_review_id: str
    earlier_incident_key: str
    matched_on: Literal["fingerprint", "service_and_title"]
    earlier_remediated: bool = Field(description="Every action item of the earlier review was done (at least one)")


class Reopening(Section):
    """A remediation was verified not effective: the lesson is open again until the review is closed again."""

    action_item_ids: list[str] = Field(description="The items verified not effective")
    reason: str
    at: UtcTime
    new_action_item_required: bool = Field(description="The policy asks for a new action item before closing again")
    action_items_before: int = Field(
        default=0, ge=0, description="How many action items the review had when reopened (items are never removed)"
    )
    settled_at: UtcTime | None = Field(default=None, description="When the review was closed again")

    @property
    def active(self) -> bool:
        return self.settled_at is None


class Review(BaseModel):
    """A lessons-learned record: incident facts, the policy's decision, and the sections people complete."""

    model_config = ConfigDict(extra="ignore")

    id: str
    incident_key: str
    version: int = Field(default=1, ge=1, description="Incremented by every change; state it when you write")
    status: ReviewStatus
    policy_reason: str
    policy_rule: str | None = Field(default=None, description="The policy rule that decided, if any")
    required_sections: list[str] = Field(default_factory=list, description="Sections that must be filled to approve")
    measurable_verification_required: bool = Field(
        default=False, description="The policy requires a measurable verification before approval"
    )
    due_at: UtcTime | None = None
    created_at: UtcTime
    updated_at: UtcTime
    updated_by: str | None = None
    incident: IncidentFacts
    title_key: str = Field(default="", description="Normalised incident title, for recurrence matching")
    owner: str | None = Field(default=None, description="The facilitator")
    participants: list[Participant] = Field(default_factory=list)
    timeline: list[ReviewTimelineEntry] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    gaps: Gaps = Field(default_factory=Gaps)
    contributing_factors: list[ContributingFactor] = Field(default_factory=list)
    recommendations: Statements = Field(default_factory=list)
    no_action_needed_reason: str | None = Field(
        default=None, description="Why no recommendation is needed; allows approval without recommendations"
    )
    action_items: list[ActionItem] = Field(default_factory=list)
    related_reviews: list[str] = Field(default_factory=list)
    recurrence: Recurrence | None = None
    recurred_after_remediation: bool = False
    status_history: list[StatusChange] = Field(default_factory=list)
    action_items_waiver: Waiver | None = None
    reopening: Reopening | None = Field(default=None, description="Set when a remediation was verified not effective")
    opened_by_event_id: str

    @model_validator(mode="after")
    def _timeline_entries_have_ids(self) -> "Review":
        # Stored before entries had ids: numbered in the order stored, which the version a writer states pins down.
        if all(entry.id for entry in self.timeline):
            return self
        number = timeline_number(self.timeline)
        numbered = []
        for entry in self.timeline:
            if entry.id:
                numbered.append(entry)
            else:
                number += 1
                numbered.append(entry.model_copy(update={"id": f"T-{number}"}))
        self.timeline = numbered
        return self

    def action_item(self, item_id: str) -> ActionItem | None:
        return next((item for item in self.action_items if item.id == item_id), None)

    def timeline_entry(self, entry_id: str) -> ReviewTimelineEntry | None:
        return next((entry for entry in self.timeline if entry.id == entry_id), None)


def timeline_number(timeline: list[ReviewTimelineEntry]) -> int:
    """The highest ``T-<n>`` in use (0 for none): the next entry is numbered one higher."""
    numbers = [int(entry.id.removeprefix("T-")) for entry in timeline if entry.id.removeprefix("T-").isdecimal()]
    return max(numbers, default=0)


def open_review(incident: IncidentClosed, decision: ReviewDecision, now: datetime) -> tuple[Review, ReviewOpened]:
    """The record to store and the event announcing it; pure, so redelivery computes the same pair."""
    review_id = review_id_for(incident.incident_key)
    status = ReviewStatus.OPEN if decision.required else ReviewStatus.NOT_REQUIRED
    facts = IncidentFacts.model_validate(incident.model_dump(include=set(IncidentFacts.model_fields)))
    review = Review(
        id=review_id,
        incident_key=incident.incident_key,
        status=status,
        policy_reason=decision.reason,
        policy_rule=decision.rule,
        required_sections=list(decision.required_sections),
        measurable_verification_required=decision.measurable_verification_required,
        due_at=decision.due_at,
        created_at=now,
        updated_at=now,
        incident=facts,
        title_key=normalised_title(incident.title),
        owner=decision.owner,
        timeline=[ReviewTimelineEntry(**entry.model_dump(), origin="imported") for entry in incident.timeline],
        opened_by_event_id=str(incident.event_id),
    )
    event = ReviewOpened(
        event_id=event_id_for(review_id, "opened", review.version),
        occurred_at=now,
        review_id=review_id,
        incident_key=incident.incident_key,
        source=incident.source,
        title=incident.title,
        severity=incident.severity,
        service=incident.service,
        team=incident.team,
        owner=decision.owner,
        status=status,
        due_at=decision.due_at,
        incident_started_at=incident.started_at,
        incident_resolved_at=incident.resolved_at,
    )
    return review, event
