"""Settings from the environment, and what the metrics show for the facts and backlog they are given."""

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from schemas import (
    ActionItemPriority,
    ActionItemStatus,
    EffectivenessCheckDue,
    ReviewOverdue,
    ReviewStatus,
    Severity,
    followup_event_adapter,
    followup_event_id,
)
from services.followup.domain.backlog import backlog_from_counts
from services.followup.domain.policy import EscalationLevel, FollowupPolicy
from services.followup.domain.projection import (
    ActionItemClosed,
    ActionItemTracked,
    ReviewCompleted,
    ReviewTracked,
)
from services.followup.metrics import FollowupMetrics
from services.followup.ports import ClaimedTimer
from services.followup.settings import FollowupSettings
from tests.unit.followup.builders import T0


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_defaults_are_the_documented_policy() -> None:
    assert FollowupSettings().policy() == FollowupPolicy(
        reminders_before=(timedelta(days=2), timedelta(days=1)),
        escalation_levels=(
            EscalationLevel(timedelta(days=2), "team_lead"),
            EscalationLevel(timedelta(days=7), "management"),
        ),
        effectiveness_check_after=timedelta(days=30),
    )


def test_the_policy_comes_from_json_and_iso_durations_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOLLOWUP_REMINDERS_BEFORE", '["P3D", 3600]')
    monkeypatch.setenv(
        "FOLLOWUP_ESCALATION_LEVELS",
        '[{"after": "PT12H", "target": "on_call"}, {"after": "P5D", "target": "vp_engineering"}]',
    )
    monkeypatch.setenv("FOLLOWUP_EFFECTIVENESS_CHECK_AFTER", "P60D")
    monkeypatch.setenv("FOLLOWUP_SWEEP_INTERVAL_SECONDS", "5")
    settings = FollowupSettings()
    assert settings.sweep_interval_seconds == 5.0
    assert settings.policy() == FollowupPolicy(
        reminders_before=(timedelta(days=3), timedelta(hours=1)),
        escalation_levels=(
            EscalationLevel(timedelta(hours=12), "on_call"),
            EscalationLevel(timedelta(days=5), "vp_engineering"),
        ),
        effectiveness_check_after=timedelta(days=60),
    )


def test_escalation_levels_out_of_order_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FOLLOWUP_ESCALATION_LEVELS", '[{"after": "P7D", "target": "management"}, {"after": "P2D", "target": "lead"}]'
    )
    with pytest.raises(ValidationError, match="increasing order"):
        FollowupSettings()


def test_facts_move_counters_and_histograms_with_low_cardinality_labels() -> None:
    metrics = FollowupMetrics.create()
    metrics.record(ReviewTracked(Severity.HIGH, ReviewStatus.OPEN, 7_200.0))
    metrics.record(ReviewTracked(Severity.LOW, ReviewStatus.NOT_REQUIRED, None))
    metrics.record(ReviewCompleted(Severity.HIGH, 3 * 86_400.0, on_time=False))
    metrics.record(ActionItemTracked(ActionItemPriority.CRITICAL))
    metrics.record(ActionItemClosed(ActionItemPriority.CRITICAL, ActionItemStatus.DONE, 86_400.0))
    registry = metrics.registry
    assert value(registry, "lessons_reviews_opened_total", severity="high") == 1
    assert value(registry, "lessons_reviews_opened_total", severity="low") == 0
    assert value(registry, "lessons_incident_duration_seconds_sum", severity="high") == 7_200
    assert value(registry, "lessons_reviews_completed_total", severity="high", outcome="late") == 1
    assert value(registry, "lessons_reviews_completed_total", severity="high", outcome="on_time") == 0
    assert value(registry, "lessons_review_time_to_publish_seconds_count", severity="high") == 1
    assert value(registry, "lessons_action_items_added_total", priority="critical") == 1
    assert value(registry, "lessons_action_items_closed_total", priority="critical", status="done") == 1
    assert value(registry, "lessons_action_item_time_to_close_seconds_sum", priority="critical") == 86_400


def test_fired_timers_are_counted_by_type_and_escalations_by_level() -> None:
    metrics = FollowupMetrics.create()
    for kind, level, event_type in (("escalation", 2, "Escalated"), ("overdue", 0, "ActionItemOverdue")):
        metrics.record_fired(
            ClaimedTimer("t", "r-1", kind, "action_item", level, T0, "id", event_type, "{}", attempts=1)
        )
    registry = metrics.registry
    assert value(registry, "lessons_escalations_total", level="2", subject="action_item") == 1
    assert value(registry, "lessons_followup_events_published_total", type="Escalated") == 1
    assert value(registry, "lessons_followup_events_published_total", type="ActionItemOverdue") == 1


def test_the_backlog_gauges_show_zero_for_every_combination_nobody_counted() -> None:
    metrics = FollowupMetrics.create()
    metrics.show_backlog(
        backlog_from_counts(
            reviews_open={("in_review", "critical"): 2},
            reviews_overdue={"critical": 1},
            action_items_open={"low": 4},
            action_items_overdue={},
        )
    )
    registry = metrics.registry
    assert value(registry, "lessons_reviews_open", status="in_review", severity="critical") == 2
    assert value(registry, "lessons_reviews_open", status="published", severity="unknown") == 0
    assert value(registry, "lessons_reviews_open", status="closed", severity="high") is None  # closed is not open
    assert value(registry, "lessons_reviews_overdue", severity="critical") == 1
    assert value(registry, "lessons_action_items_open", priority="low") == 4
    assert value(registry, "lessons_action_items_overdue", priority="low") == 0


def test_followup_events_round_trip_and_reject_unknown_fields() -> None:
    event = ReviewOverdue(
        event_id=followup_event_id("r-1:overdue:review:0@20261205T090000Z"),
        occurred_at=T0,
        review_id="r-1",
        timer_id="r-1:overdue:review:0@20261205T090000Z",
        incident_key="generic:1",
        title="Checkout latency",
        severity=Severity.HIGH,
        due_at=T0,
    )
    assert followup_event_adapter.validate_json(event.model_dump_json()) == event
    assert followup_event_id(event.timer_id) == event.event_id
    with pytest.raises(ValidationError):
        followup_event_adapter.validate_python({**event.model_dump(), "surprise": 1})
    with pytest.raises(ValidationError):
        EffectivenessCheckDue.model_validate(
            {
                **event.model_dump(exclude={"type", "due_at"}),
                "action_items_done_at": T0,
                "after_seconds": 1,
                "done_action_item_ids": (),
            }
        )
