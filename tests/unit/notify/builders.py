"""Events and routing files for notify's tests."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

from schemas import (
    ActionItemAdded,
    ActionItemOverdue,
    Escalated,
    RemediationVerified,
    ReminderDue,
    ReviewOpened,
    ReviewStatusChanged,
    followup_event_id,
)
from services.notify.domain.notices import Notice, ReviewFacts, followup_notice
from services.notify.domain.routing import Routing, parse_routing

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
EXAMPLE_ROUTING = Path(__file__).resolve().parents[3] / "services" / "notify" / "routing.example.yaml"

ROUTING_YAML = """
people:
  alice:
    email: alice@example.org
    chat: {destination: payments-chat, handle: "<@U0ALICE>"}
    aliases: [Alice.Example]
    time_zone: Europe/Paris
    quiet_hours: {start: "22:00", end: "07:30"}
  bob:
    email: bob@example.org
    time_zone: America/New_York
    digest: PT4H
  carol:
    email: carol@example.org
  lead:
    email: lead@example.org
chat_destinations:
  payments-chat: {kind: slack}
  leaders: {kind: teams}
teams:
  payments:
    channel: payments-chat
    roles: {team_lead: lead}
roles:
  management: [carol]
subscriptions:
  - channel: leaders
    events: [ReviewPublished]
    severity: [critical]
  - person: carol
    events: ReviewPublished
    team: payments
"""


def routing(text: str = ROUTING_YAML) -> Routing:
    return parse_routing(text, source="test-routing.yaml")


def reminder(
    owner: str | None = "alice", *, item: bool = True, team: str | None = "payments", n: int = 1
) -> ReminderDue:
    return ReminderDue.model_validate(
        {
            "event_id": followup_event_id(f"reminder-{n}-{owner}-{item}"),
            "occurred_at": T0,
            "review_id": f"r-{n}",
            "timer_id": f"reminder-{n}",
            "incident_key": f"generic:INC-{n}",
            "title": f"Checkout latency <b>{n}</b>",
            "severity": "high",
            "team": team,
            "owner": owner,
            "subject": "action_item" if item else "review",
            "action_item_id": f"ai-{n}" if item else None,
            "action_item_title": "Add a latency alert" if item else None,
            "due_at": T0 + timedelta(days=2),
            "before_seconds": 172800,
        }
    )


def overdue(owner: str = "bob", n: int = 1) -> ActionItemOverdue:
    return ActionItemOverdue.model_validate(
        {
            "event_id": followup_event_id(f"overdue-{n}"),
            "occurred_at": T0,
            "review_id": f"r-{n}",
            "timer_id": f"overdue-{n}",
            "incident_key": f"generic:INC-{n}",
            "title": f"Incident {n}",
            "severity": "medium",
            "team": "payments",
            "owner": owner,
            "action_item_id": f"ai-{n}",
            "action_item_title": f"Item {n}",
            "due_at": T0,
        }
    )


def escalated(target: str, team: str | None = "payments", level: int = 1) -> Escalated:
    return Escalated.model_validate(
        {
            "event_id": followup_event_id(f"esc-{target}-{level}"),
            "occurred_at": T0,
            "review_id": "r-1",
            "timer_id": f"esc-{level}",
            "incident_key": "generic:INC-1",
            "title": "Checkout latency",
            "severity": "high",
            "team": team,
            "owner": "alice",
            "subject": "review",
            "level": level,
            "target": target,
            "due_at": T0 - timedelta(days=3),
            "overdue_seconds": 3 * 86400,
        }
    )


def remediation(verifier: str | None) -> RemediationVerified:
    judged = {"method": "manual", "judged_by": "followup", "judged_at": T0, "detail": "Latency back under 300 ms"}
    return RemediationVerified.model_validate(
        {
            "event_id": followup_event_id("verify-1"),
            "occurred_at": T0,
            "review_id": "r-1",
            "timer_id": "verify-1",
            "incident_key": "generic:INC-1",
            "title": "Checkout latency",
            "severity": "high",
            "team": "payments",
            "owner": "alice",
            "action_item_id": "ai-1",
            "action_item_title": "Add a latency alert",
            "verification": {"method": "manual", "verifier": verifier},
            "verdict": "effective",
            "evidence": judged,
            "attempt": 1,
        }
    )


def opened(review_id: str = "r-1", owner: str | None = "alice", severity: str = "critical") -> ReviewOpened:
    return ReviewOpened.model_validate(
        {
            "event_id": uuid5(NAMESPACE_URL, f"{review_id}/1"),
            "occurred_at": T0,
            "review_id": review_id,
            "version": 1,
            "incident_key": "generic:INC-1",
            "source": "generic",
            "title": "Checkout latency",
            "severity": severity,
            "service": "checkout",
            "team": "payments",
            "owner": owner,
            "status": "open",
            "incident_resolved_at": T0 - timedelta(hours=1),
        }
    )


def item_added(review_id: str = "r-1", owner: str = "bob", verifier: str | None = "alice.example") -> ActionItemAdded:
    return ActionItemAdded.model_validate(
        {
            "event_id": uuid5(NAMESPACE_URL, f"{review_id}/2"),
            "occurred_at": T0,
            "review_id": review_id,
            "version": 2,
            "action_item_id": "ai-1",
            "title": "Add a latency alert",
            "owner": owner,
            "priority": "high",
            "category": "monitoring_alerting",
            "status": "open",
            "verification": {"method": "manual", "verifier": verifier} if verifier else None,
        }
    )


def published(review_id: str = "r-1", version: int = 3, changed_by: str | None = "dave") -> ReviewStatusChanged:
    return ReviewStatusChanged.model_validate(
        {
            "event_id": uuid5(NAMESPACE_URL, f"{review_id}/{version}"),
            "occurred_at": T0,
            "review_id": review_id,
            "version": version,
            "from_status": "approved",
            "to_status": "published",
            "changed_by": changed_by,
        }
    )


def notice_of(event: ReminderDue | ActionItemOverdue | Escalated, facts: ReviewFacts | None = None) -> Notice:
    return followup_notice(event, facts)
