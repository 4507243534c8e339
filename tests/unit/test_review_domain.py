from datetime import UTC, datetime

from schemas import IncidentClosed, ReviewStatus, Severity, TimelineEntry
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import open_review, review_id_for

RESOLVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 27, 10, 1, tzinfo=UTC)


def incident(severity: Severity) -> IncidentClosed:
    return IncidentClosed.create(
        source="pagerduty",
        source_incident_id="Q1W2E3",
        resolved_at=RESOLVED,
        title="Orders stuck in pending",
        severity=severity,
        service="orders",
        team="fulfilment",
        labels={"env": "prod"},
        timeline=(TimelineEntry(at=RESOLVED, kind="resolved", message="fixed"),),
    )


def test_policy_requires_a_review_for_severe_incidents_with_a_due_date() -> None:
    decision = ReviewPolicy().decide(incident(Severity.HIGH))
    assert decision.required
    assert decision.due_at == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    assert decision.reason == "severity high requires a review within 7 days"


def test_policy_lets_low_severity_go_without_review() -> None:
    decision = ReviewPolicy().decide(incident(Severity.LOW))
    assert not decision.required
    assert decision.due_at is None


def test_opening_a_review_keeps_the_facts_and_empty_sections() -> None:
    review, event = open_review(incident(Severity.CRITICAL), ReviewPolicy().decide(incident(Severity.CRITICAL)), NOW)
    assert review.id == review_id_for("pagerduty:Q1W2E3")
    assert review.status is ReviewStatus.OPEN
    assert review.version == 1
    assert review.incident.labels == {"env": "prod"}
    assert review.incident.team == "fulfilment"
    assert [entry.kind for entry in review.timeline] == ["resolved"]
    assert review.analysis.what_went_well == []
    assert review.gaps.process == []
    assert review.action_items == []
    document = review.to_document()
    assert document["_id"] == review.id
    assert "id" not in document
    assert event.review_id == review.id
    assert event.status is ReviewStatus.OPEN
    assert event.due_at == review.due_at
    assert event.incident_resolved_at == RESOLVED


def test_opening_is_deterministic_so_redelivery_yields_the_same_ids() -> None:
    closed = incident(Severity.MEDIUM)
    first = open_review(closed, ReviewPolicy().decide(closed), NOW)
    again = open_review(closed, ReviewPolicy().decide(closed), NOW)
    assert first[0].id == again[0].id
    assert first[1].event_id == again[1].event_id


def test_not_required_reviews_are_recorded_with_the_reason() -> None:
    closed = incident(Severity.UNKNOWN)
    review, event = open_review(closed, ReviewPolicy().decide(closed), NOW)
    assert review.status is ReviewStatus.NOT_REQUIRED
    assert review.policy_reason == "severity unknown does not require a review"
    assert event.status is ReviewStatus.NOT_REQUIRED
