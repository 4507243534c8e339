"""Which incidents need a lessons-learned review, and by when.

The foundation policy is by severity; the YAML policy file (services, teams, labels, business days) builds on it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import IncidentClosed, Severity


@dataclass(frozen=True)
class ReviewDecision:
    required: bool
    reason: str
    due_at: datetime | None


@dataclass(frozen=True)
class ReviewPolicy:
    required_severities: frozenset[Severity] = frozenset({Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM})
    # Calendar days from resolution; severe incidents are reviewed while memories are fresh.
    due_days: Mapping[Severity, int] = field(
        default_factory=lambda: {
            Severity.CRITICAL: 5,
            Severity.HIGH: 7,
            Severity.MEDIUM: 14,
            Severity.LOW: 30,
            Severity.UNKNOWN: 14,
        }
    )

    def decide(self, incident: IncidentClosed) -> ReviewDecision:
        if incident.severity not in self.required_severities:
            return ReviewDecision(
                required=False,
                reason=f"severity {incident.severity} does not require a review",
                due_at=None,
            )
        days = self.due_days.get(incident.severity, 14)
        return ReviewDecision(
            required=True,
            reason=f"severity {incident.severity} requires a review within {days} days",
            due_at=incident.resolved_at + timedelta(days=days),
        )
