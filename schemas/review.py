"""Review lifecycle events published by the review service on ``reviews.events`` (key: ``review_id``).

Every event names the review and the review ``version`` the change produced, so a consumer can apply events in
order and recognise one it has already seen (same ``event_id``) or an older one (lower ``version``).
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from schemas.base import Event, utc_datetime
from schemas.incident import Severity, Source
from schemas.verification import Evidence, Verdict, VerificationPlan


class ReviewStatus(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    PUBLISHED = "published"
    CLOSED = "closed"
    NOT_REQUIRED = "not_required"
    CANCELLED = "cancelled"


class ActionItemStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    WONT_DO = "wont_do"


class ActionItemPriority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ActionItemCategory(StrEnum):
    PLAYBOOK_UPDATE = "playbook_update"
    MONITORING_ALERTING = "monitoring_alerting"
    TRAINING = "training"
    SECURITY_CONTROL = "security_control"
    PROCESS = "process"
    OTHER = "other"


class ReviewEvent(Event):
    review_id: str = Field(min_length=1)
    version: int = Field(ge=1, description="The review's version after the change this event announces")


class ReviewOpened(ReviewEvent):
    """A lessons-learned record was opened for a closed incident (status ``open``), or recorded as ``not_required``."""

    schema_version: Literal[1] = 1
    type: Literal["ReviewOpened"] = "ReviewOpened"
    version: int = Field(default=1, ge=1)
    incident_key: str
    source: Source
    title: str
    severity: Severity
    service: str | None = None
    team: str | None = None
    owner: str | None = None
    status: ReviewStatus
    due_at: utc_datetime | None = None
    incident_started_at: utc_datetime | None = None
    incident_resolved_at: utc_datetime


class ReviewUpdated(ReviewEvent):
    """Sections of the record were edited, or its owner or due date changed."""

    schema_version: Literal[1] = 1
    type: Literal["ReviewUpdated"] = "ReviewUpdated"
    changed: tuple[str, ...] = Field(description="Names of the top-level fields that changed, e.g. analysis, due_at")
    owner: str | None = None
    due_at: utc_datetime | None = None


class ReviewStatusChanged(ReviewEvent):
    schema_version: Literal[1] = 1
    type: Literal["ReviewStatusChanged"] = "ReviewStatusChanged"
    from_status: ReviewStatus
    to_status: ReviewStatus
    reason: str | None = None
    changed_by: str | None = None


class ActionItemEvent(ReviewEvent):
    action_item_id: str = Field(min_length=1)
    title: str
    owner: str | None = None
    due_at: utc_datetime | None = None
    priority: ActionItemPriority
    category: ActionItemCategory
    status: ActionItemStatus
    verification: VerificationPlan | None = Field(
        default=None, description="How the item proves it worked, when it says; follow-up evaluates measurable ones"
    )


class ActionItemAdded(ActionItemEvent):
    schema_version: Literal[1] = 1
    type: Literal["ActionItemAdded"] = "ActionItemAdded"


class ActionItemUpdated(ActionItemEvent):
    """An action item changed (status, owner, due date...); ``changed`` names what."""

    schema_version: Literal[1] = 1
    type: Literal["ActionItemUpdated"] = "ActionItemUpdated"
    changed: tuple[str, ...]
    status_reason: str | None = Field(default=None, description="Why it was marked won't do, when it was")


class ReviewRecurred(ReviewEvent):
    """The incident behind this review matches an earlier review's incident: the problem came back."""

    schema_version: Literal[1] = 1
    type: Literal["ReviewRecurred"] = "ReviewRecurred"
    incident_key: str
    earlier_review_id: str
    earlier_incident_key: str
    matched_on: Literal["fingerprint", "service_and_title"]
    recurred_after_remediation: bool = Field(description="Every action item of the earlier review was done")


class VerificationRecorded(ReviewEvent):
    """A verdict on an action item's remediation was recorded (from follow-up's judge or a verifier).

    ``reopened`` is true when a ``not_effective`` verdict reopened the lesson: the review is flagged and, as the
    review policy says, may need a new action item before it can be closed again.
    """

    schema_version: Literal[1] = 1
    type: Literal["VerificationRecorded"] = "VerificationRecorded"
    action_item_id: str = Field(min_length=1)
    title: str
    verdict: Verdict
    evidence: Evidence
    reopened: bool = False


AnyReviewEvent = Annotated[
    ReviewOpened
    | ReviewUpdated
    | ReviewStatusChanged
    | ActionItemAdded
    | ActionItemUpdated
    | ReviewRecurred
    | VerificationRecorded,
    Field(discriminator="type"),
]
REVIEW_EVENT_TYPES: tuple[str, ...] = (
    "ReviewOpened",
    "ReviewUpdated",
    "ReviewStatusChanged",
    "ActionItemAdded",
    "ActionItemUpdated",
    "ReviewRecurred",
    "VerificationRecorded",
)
review_event_adapter: TypeAdapter[AnyReviewEvent] = TypeAdapter(AnyReviewEvent)
