"""What follow-up keeps of each review, and which reviews count as open."""

from collections.abc import Mapping

from schemas import ReviewOpened, ReviewStatus, Severity

# A published review is still open for follow-up: its action items are being worked on until it is closed.
OPEN_STATUSES = frozenset({ReviewStatus.OPEN, ReviewStatus.IN_REVIEW, ReviewStatus.APPROVED, ReviewStatus.PUBLISHED})


def tracked_review(event: ReviewOpened) -> dict[str, object]:
    """The follow-up view of a newly opened review, as stored on first sight."""
    return {
        "_id": event.review_id,
        "incident_key": event.incident_key,
        "status": event.status.value,
        "severity": event.severity.value,
        "service": event.service,
        "team": event.team,
        "due_at": event.due_at,
        "opened_at": event.occurred_at,
        "incident_started_at": event.incident_started_at,
        "incident_resolved_at": event.incident_resolved_at,
        "last_event_id": str(event.event_id),
    }


def open_counts(counted: Mapping[str, int]) -> dict[Severity, int]:
    """Every severity with its count of open reviews, zero where none: a gauge series must not vanish."""
    return {severity: counted.get(severity.value, 0) for severity in Severity}
