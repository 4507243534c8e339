"""The follow-up view kept beside a review: each follow-up event applied once, every list bounded."""

from datetime import UTC, datetime, timedelta

from schemas import (
    ActionItemOverdue,
    AnyFollowupEvent,
    EffectivenessCheckDue,
    Escalated,
    ReminderDue,
    ReviewOverdue,
    Severity,
    Verdict,
    followup_event_id,
)
from services.review.domain.editing import ActionItemEdit, update_action_item
from services.review.domain.followup_view import (
    MAX_REMINDERS,
    FollowupView,
    apply_followup_event,
    followup_of,
)
from services.review.domain.verification import Recorded, record_judged_verdict
from tests.support.verification import METRIC_CHECK, remediation_verified
from tests.unit.review.builders import NOW, opened, with_item

DUE = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
COMMON = {
    "review_id": "R-1",
    "incident_key": "pagerduty:Q1",
    "title": "Orders stuck in pending",
    "severity": Severity.CRITICAL,
    "owner": "alice",
}


def reminder(n: int) -> ReminderDue:
    timer = f"reminder|R-1|{n}"
    return ReminderDue(
        event_id=followup_event_id(timer),
        occurred_at=DUE - timedelta(days=1) + timedelta(minutes=n),
        timer_id=timer,
        subject="review",
        due_at=DUE,
        before_seconds=86_400,
        **COMMON,
    )


def applied(view: FollowupView, *events: AnyFollowupEvent) -> FollowupView:
    for event in events:
        changed = apply_followup_event(view, event, NOW)
        assert changed is not None
        view = changed
    return view


def test_each_kind_of_event_lands_where_the_ui_reads_it() -> None:
    overdue = ReviewOverdue(event_id=followup_event_id("o"), occurred_at=DUE, timer_id="o", due_at=DUE, **COMMON)
    item_overdue = ActionItemOverdue(
        event_id=followup_event_id("io"), occurred_at=DUE, timer_id="io", action_item_id="AI-1", due_at=DUE, **COMMON
    )
    escalations = [
        Escalated(
            event_id=followup_event_id(f"e{level}"),
            occurred_at=DUE + timedelta(days=level),
            timer_id=f"e{level}",
            subject="review",
            level=level,
            target=target,
            due_at=DUE,
            overdue_seconds=86_400 * level,
            **COMMON,
        )
        for level, target in ((1, "team_lead"), (2, "director"))
    ]
    check = EffectivenessCheckDue(
        event_id=followup_event_id("c"),
        occurred_at=DUE + timedelta(days=30),
        timer_id="c",
        action_items_done_at=DUE,
        after_seconds=86_400 * 30,
        done_action_item_ids=("AI-1",),
        **COMMON,
    )
    verdict = remediation_verified("R-1", "pagerduty:Q1", verdict=Verdict.INCONCLUSIVE)
    view = applied(FollowupView(review_id="R-1"), reminder(1), overdue, item_overdue, *escalations, check, verdict)

    assert [(r.subject, r.due_at, r.owner) for r in view.reminders] == [("review", DUE, "alice")]
    assert view.review_overdue_since == DUE
    assert [(item.action_item_id, item.overdue_since) for item in view.overdue_action_items] == [("AI-1", DUE)]
    assert (view.escalation_level, view.escalation_target, len(view.escalations)) == (2, "director", 2)
    assert view.effectiveness_check is not None
    assert view.effectiveness_check.done_action_item_ids == ["AI-1"]
    [attempt] = view.verification_attempts
    assert (attempt.action_item_id, attempt.attempt, attempt.verdict) == ("AI-1", 1, Verdict.INCONCLUSIVE)
    assert view.version == 7


def test_an_event_applied_once_changes_nothing_the_second_time() -> None:
    view = applied(FollowupView(review_id="R-1"), reminder(1))
    assert apply_followup_event(view, reminder(1), NOW) is None
    stored = FollowupView.from_document(view.to_document())
    assert apply_followup_event(stored, reminder(1), NOW) is None  # remembered across a round trip to storage
    assert "applied_event_ids" not in view.model_dump()  # not part of what the API shows


def test_lists_keep_the_latest_entries_only() -> None:
    view = applied(FollowupView(review_id="R-1"), *(reminder(n) for n in range(MAX_REMINDERS + 5)))
    assert len(view.reminders) == MAX_REMINDERS
    assert view.reminders[0].sent_at == reminder(5).occurred_at


def test_done_items_with_a_measurable_check_and_no_conclusive_verdict_await_verification() -> None:
    review = with_item(with_item(opened(), verification=METRIC_CHECK, status="done"), title="Manual", status="done")
    review = with_item(review, title="Not done yet", verification=METRIC_CHECK)
    assert followup_of(review, None).awaiting_verification == ["AI-1"]
    event = remediation_verified(review.id, review.incident_key, verdict=Verdict.EFFECTIVE)
    recorded = record_judged_verdict(review, event, now=NOW, new_item_required=True)
    assert isinstance(recorded, Recorded)
    assert followup_of(recorded.review, None).awaiting_verification == []
    change = update_action_item(review, "AI-3", ActionItemEdit.model_validate({"status": "done"}), by="a", now=NOW)
    assert change is not None
    assert followup_of(change[0], None).awaiting_verification == ["AI-1", "AI-3"]
