"""Ingest's own ``lessons_*`` metrics, on the service's registry beside FastStream's Kafka metrics."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from servicekit.dead_letters import DeadLetterMetrics


@dataclass(frozen=True)
class IngestMetrics:
    registry: CollectorRegistry
    dead_letters: DeadLetterMetrics
    events_received: Counter
    incidents_published: Counter
    incidents_suppressed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "IngestMetrics":
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            dead_letters=DeadLetterMetrics(registry),
            events_received=Counter(
                "lessons_incident_events_received_total",
                "Records read from incidents.raw, by source and outcome (accepted, duplicate, ignored, invalid)",
                ["source", "outcome"],
                registry=registry,
            ),
            incidents_published=Counter(
                "lessons_incidents_closed_published_total",
                "IncidentClosed events published to incidents.closed, by source",
                ["source"],
                registry=registry,
            ),
            incidents_suppressed=Counter(
                "lessons_incident_closures_suppressed_total",
                "Closed incidents not published again because they were published within the de-duplication window",
                ["source"],
                registry=registry,
            ),
        )
