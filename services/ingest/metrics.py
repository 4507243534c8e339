"""Ingest's own ``lessons_*`` metrics, on the service's registry beside FastStream's Kafka metrics."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class IngestMetrics:
    registry: CollectorRegistry
    events_received: Counter
    dead_lettered: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "IngestMetrics":
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            events_received=Counter(
                "lessons_incident_events_received_total",
                "Incident events read from incidents.raw, by source and outcome",
                ["source", "outcome"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "lessons_dlq_messages_total",
                "Records sent to a dead-letter topic",
                ["topic"],
                registry=registry,
            ),
        )
