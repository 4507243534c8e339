"""Opening a record: the facts kept, the policy's decision stored, ids derived so redelivery changes nothing."""

from datetime import UTC, datetime

from schemas import ReviewStatus, Severity
from services.review.documents import review_from_document, review_to_document
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import normalised_title, open_review, review_id_for
from tests.unit.review.builders import NOW, RESOLVED, incident, opened


def test_opening_a_review_keeps_the_facts_and_empty_sections() -> None:
    closed = incident(severity=Severity.CRITICAL)
    review, event = open_review(closed, ReviewPolicy().decide(closed), NOW)
    assert review.id == review_id_for("pagerduty:Q1W2E3")
    assert review.status is ReviewStatus.OPEN
    assert review.version == 1
    assert review.incident.labels == {"env": "prod"}
    assert review.incident.team == "fulfilment"
    assert review.policy_rule == "critical-high-medium"
    assert review.required_sections == ["owner", "analysis.what_went_wrong", "contributing_factors"]
    assert [(entry.kind, entry.origin) for entry in review.timeline] == [("resolved", "imported")]
    assert review.analysis.what_went_well == []
    assert review.action_items == []
    assert review.recurred_after_remediation is False
    assert event.review_id == review.id
    assert event.status is ReviewStatus.OPEN
    assert event.due_at == review.due_at
    assert event.incident_resolved_at == RESOLVED


def test_the_stored_document_uses_underscore_id_and_reads_back_the_same() -> None:
    review = opened()
    document = review_to_document(review)
    assert document["_id"] == review.id
    assert "id" not in document
    assert review_from_document(document) == review


def test_a_document_written_before_the_record_grew_still_loads() -> None:
    old = {
        "_id": "r1",
        "incident_key": "generic:1",
        "version": 1,
        "status": "open",
        "policy_reason": "severity high requires a review within 7 days",
        "due_at": RESOLVED,
        "created_at": NOW,
        "updated_at": NOW,
        "incident": {
            "incident_key": "generic:1",
            "source": "generic",
            "source_incident_id": "1",
            "title": "Disk full",
            "severity": "high",
            "source_severity": None,
            "service": None,
            "team": None,
            "started_at": None,
            "resolved_at": RESOLVED,
            "url": None,
            "labels": {},
            "fingerprint": None,
        },
        "owner": None,
        "participants": [],
        "timeline": [{"at": RESOLVED, "kind": "resolved", "message": "", "actor": None}],
        "analysis": {"what_went_well": [], "what_went_wrong": []},
        "gaps": {"process": [], "technology": [], "training": []},
        "contributing_factors": [],
        "recommendations": [],
        "action_items": [],
        "related_reviews": [],
        "opened_by_event_id": "e1",
    }
    review = review_from_document(old)
    assert review.timeline[0].origin == "imported"
    assert review.required_sections == []
    assert review.status_history == []


def test_opening_is_deterministic_so_redelivery_yields_the_same_ids() -> None:
    closed = incident(severity=Severity.MEDIUM)
    first = open_review(closed, ReviewPolicy().decide(closed), NOW)
    again = open_review(closed, ReviewPolicy().decide(closed), datetime(2027, 1, 1, tzinfo=UTC))
    assert first[0].id == again[0].id
    assert first[1].event_id == again[1].event_id


def test_not_required_reviews_are_recorded_with_the_reason() -> None:
    closed = incident(severity=Severity.UNKNOWN)
    review, event = open_review(closed, ReviewPolicy().decide(closed), NOW)
    assert review.status is ReviewStatus.NOT_REQUIRED
    assert review.policy_reason == "no rule matched severity unknown, so otherwise: not_required: no review needed"
    assert review.due_at is None
    assert event.status is ReviewStatus.NOT_REQUIRED


def test_titles_are_normalised_for_recurrence_matching() -> None:
    assert normalised_title("Payments API returning 502s (INC 1234)") == "payments api returning #s inc #"
    assert normalised_title("payments api returning 503s  (inc 99)") == "payments api returning #s inc #"
    assert normalised_title("Pod 7f3a9c2e1b crashed") == normalised_title("pod 0a1b2c3d4e crashed")
    assert normalised_title("Checkout slow") != normalised_title("Checkout down")
