"""Review lifecycle events published by the review service on ``reviews.events``."""

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.base import Event, utc_datetime
from schemas.incident import Severity, Source


class ReviewStatus(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    PUBLISHED = "published"
    CLOSED = "closed"
    NOT_REQUIRED = "not_required"
    CANCELLED = "cancelled"


class ReviewOpened(Event):
    """A lessons-learned record was opened for a closed incident (or recorded as not required)."""

    schema_version: Literal[1] = 1
    type: Literal["ReviewOpened"] = "ReviewOpened"
    review_id: str = Field(min_length=1)
    incident_key: str
    source: Source
    title: str
    severity: Severity
    service: str | None = None
    team: str | None = None
    status: ReviewStatus
    due_at: utc_datetime | None = None
    incident_started_at: utc_datetime | None = None
    incident_resolved_at: utc_datetime
