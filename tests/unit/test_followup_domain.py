from datetime import UTC, datetime
from uuid import UUID

from schemas import ReviewOpened, ReviewStatus, Severity
from services.followup.domain.tracking import OPEN_STATUSES, open_counts, tracked_review


def test_open_counts_keep_every_severity_series() -> None:
    counts = open_counts({"critical": 2, "low": 1})
    assert counts == {
        Severity.CRITICAL: 2,
        Severity.HIGH: 0,
        Severity.MEDIUM: 0,
        Severity.LOW: 1,
        Severity.UNKNOWN: 0,
    }


def test_closed_and_not_required_reviews_are_not_open() -> None:
    assert ReviewStatus.CLOSED not in OPEN_STATUSES
    assert ReviewStatus.NOT_REQUIRED not in OPEN_STATUSES
    assert ReviewStatus.CANCELLED not in OPEN_STATUSES
    assert ReviewStatus.PUBLISHED in OPEN_STATUSES


def test_tracked_review_holds_no_person_and_the_fields_metrics_need() -> None:
    event = ReviewOpened(
        event_id=UUID("5f0c7c1e-0000-4000-8000-000000000001"),
        occurred_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        review_id="r-9",
        incident_key="generic:9",
        source="generic",
        title="t",
        severity=Severity.HIGH,
        status=ReviewStatus.OPEN,
        due_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        incident_resolved_at=datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
    )
    tracked = tracked_review(event)
    assert tracked["_id"] == "r-9"
    assert tracked["status"] == "open"
    assert tracked["severity"] == "high"
    assert tracked["due_at"] == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert tracked["last_event_id"] == "5f0c7c1e-0000-4000-8000-000000000001"
