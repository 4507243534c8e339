"""Review's own ``lessons_*`` metrics, on the service's registry beside FastStream's Kafka metrics."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from servicekit.dead_letters import DeadLetterMetrics


@dataclass(frozen=True)
class ReviewMetrics:
    registry: CollectorRegistry
    dead_letters: DeadLetterMetrics
    records_created: Counter
    duplicates: Counter
    policy_decisions: Counter
    recurrences: Counter
    stale_writes: Counter
    verdicts_recorded: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "ReviewMetrics":
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            dead_letters=DeadLetterMetrics(registry),
            records_created=Counter(
                "lessons_review_records_created_total",
                "Review records created from closed incidents, by status (open or not_required) and severity",
                ["status", "severity"],
                registry=registry,
            ),
            duplicates=Counter(
                "lessons_incident_closed_duplicates_total",
                "IncidentClosed events for an incident that already had a review record",
                registry=registry,
            ),
            policy_decisions=Counter(
                "lessons_review_policy_decisions_total",
                "Review policy decisions on new incidents, by status (open or not_required) and the rule that decided "
                "(otherwise when none matched)",
                ["status", "rule"],
                registry=registry,
            ),
            recurrences=Counter(
                "lessons_review_recurrences_total",
                "New reviews linked to an earlier review of the same problem, by whether it recurred after remediation",
                ["after_remediation"],
                registry=registry,
            ),
            stale_writes=Counter(
                "lessons_review_stale_writes_total",
                "API writes refused because the review changed since the writer read it (answered 409)",
                registry=registry,
            ),
            verdicts_recorded=Counter(
                "lessons_review_verdicts_recorded_total",
                "Remediation verdicts recorded on action items, by verdict, who recorded them (followup or person) "
                "and whether the verdict reopened the lesson",
                ["verdict", "recorded_by", "reopened"],
                registry=registry,
            ),
        )
