"""Reviews and incidents for tests, built through the domain itself so they are always valid."""

from datetime import UTC, datetime
from typing import Any

from schemas import IncidentClosed, Severity, TimelineEntry
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    SectionEdit,
    add_action_item,
    edit_sections,
    update_action_item,
)
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import ContributingFactor, FactorCategory, Review, open_review
from tests.support.verification import METRIC_CHECK

RESOLVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday
NOW = datetime(2026, 11, 27, 10, 1, tzinfo=UTC)


def incident(incident_id: str = "Q1W2E3", severity: Severity = Severity.CRITICAL, **fields: Any) -> IncidentClosed:
    defaults: dict[str, Any] = {
        "title": "Orders stuck in pending",
        "severity": severity,
        "source_severity": "P1",
        "service": "orders",
        "team": "fulfilment",
        "labels": {"env": "prod"},
        "started_at": datetime(2026, 11, 27, 9, 12, tzinfo=UTC),
        "timeline": (TimelineEntry(at=RESOLVED, kind="resolved", message="fixed", actor="pagerduty"),),
    }
    return IncidentClosed.create(
        source=fields.pop("source", "pagerduty"),
        source_incident_id=incident_id,
        resolved_at=fields.pop("resolved_at", RESOLVED),
        **{**defaults, **fields},
    )


def opened(closed: IncidentClosed | None = None, policy: ReviewPolicy | None = None) -> Review:
    closed = closed or incident()
    review, _ = open_review(closed, (policy or ReviewPolicy()).decide(closed), NOW)
    return review


def edited(review: Review, **sections: Any) -> Review:
    change = edit_sections(review, SectionEdit.model_validate(sections), by="alice", now=NOW)
    assert change is not None
    return change[0]


def item_updated(review: Review, item_id: str, edit: ActionItemEdit, *, by: str) -> Review:
    change = update_action_item(review, item_id, edit, by=by, now=NOW)
    assert change is not None
    return change[0]


def ready_to_approve(review: Review) -> Review:
    """Findings, a recommendation, every section the default policy requires, and a done action item with the
    measurable verification the default policy requires of critical incidents."""
    ready = edited(
        review,
        owner="alice",
        analysis={"what_went_wrong": ["The retry storm was not throttled"]},
        contributing_factors=[ContributingFactor(category=FactorCategory.TECHNOLOGY, description="No backoff")],
        recommendations=["Add exponential backoff to the order worker"],
    )
    return with_item(ready, owner="erin", status="done", verification=METRIC_CHECK)


def with_item(review: Review, **fields: Any) -> Review:
    draft = ActionItemDraft.model_validate({"title": "Add backoff", **fields})
    return add_action_item(review, draft, by="alice", now=NOW)[0]


def with_status(review: Review, status: str) -> Review:
    """The same review in another status, as if it had got there (for tables of rules)."""
    return review.model_copy(update={"status": status})
