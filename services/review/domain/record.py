"""The lessons-learned record and what opening one produces (the record and its ``ReviewOpened`` event)."""

from datetime import datetime
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from schemas import IncidentClosed, ReviewOpened, ReviewStatus, Severity, TimelineEntry
from services.review.domain.policy import ReviewDecision

REVIEW_NAMESPACE = UUID("0b8f5a55-2f57-4c1d-8b0e-7d8f3a7f6c11")


def review_id_for(incident_key: str) -> str:
    """One review per incident: the id is derived from the key, so every replica computes the same one."""
    return str(uuid5(REVIEW_NAMESPACE, incident_key))


def event_id_for(review_id: str, what: str, version: int) -> UUID:
    """An event's id follows from the change it announces, so a re-published event is recognisably the same."""
    return uuid5(REVIEW_NAMESPACE, f"{review_id}|{what}|{version}")


class IncidentFacts(BaseModel):
    """What the paging tool said about the incident, kept as it was when the review opened."""

    incident_key: str
    source: str
    source_incident_id: str
    title: str
    severity: Severity
    source_severity: str | None
    service: str | None
    team: str | None
    started_at: datetime | None
    resolved_at: datetime
    url: str | None
    labels: dict[str, str]
    fingerprint: str | None


class Analysis(BaseModel):
    what_went_well: list[str] = Field(default_factory=list)
    what_went_wrong: list[str] = Field(default_factory=list)
    response_effectiveness: str | None = None
    detection_and_prevention: str | None = None
    communication_and_coordination: str | None = None
    resource_allocation: str | None = None


class Gaps(BaseModel):
    process: list[str] = Field(default_factory=list)
    technology: list[str] = Field(default_factory=list)
    training: list[str] = Field(default_factory=list)


class Review(BaseModel):
    """A lessons-learned record: incident facts plus the sections people complete."""

    id: str = Field(alias="_id")
    incident_key: str
    version: int = 1
    status: ReviewStatus
    policy_reason: str
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    incident: IncidentFacts
    owner: str | None = None
    participants: list[dict[str, str]] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    gaps: Gaps = Field(default_factory=Gaps)
    contributing_factors: list[dict[str, str]] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    action_items: list[dict[str, str]] = Field(default_factory=list)
    related_reviews: list[str] = Field(default_factory=list)
    opened_by_event_id: str

    model_config = ConfigDict(populate_by_name=True)

    def to_document(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="python")


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
        due_at=decision.due_at,
        created_at=now,
        updated_at=now,
        incident=facts,
        timeline=list(incident.timeline),
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
        status=status,
        due_at=decision.due_at,
        incident_started_at=incident.started_at,
        incident_resolved_at=incident.resolved_at,
    )
    return review, event
