"""Follow-up's ``lessons_*`` metrics: low-cardinality labels only, never an incident id or a person."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas import Severity


@dataclass(frozen=True)
class FollowupMetrics:
    registry: CollectorRegistry
    reviews_opened: Counter
    reviews_open: Gauge
    review_events: Counter
    dead_lettered: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "FollowupMetrics":
        registry = registry or CollectorRegistry()
        metrics = cls(
            registry=registry,
            reviews_opened=Counter(
                "lessons_reviews_opened_total",
                "Lessons-learned reviews opened (first sight of each review), by severity",
                ["severity"],
                registry=registry,
            ),
            reviews_open=Gauge(
                "lessons_reviews_open",
                "Reviews not yet closed, by severity (rebuilt from MongoDB on start)",
                ["severity"],
                registry=registry,
            ),
            review_events=Counter(
                "lessons_review_events_total",
                "Events read from reviews.events, by type and outcome (tracked, duplicate, ignored)",
                ["type", "outcome"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "lessons_dlq_messages_total",
                "Records sent to a dead-letter topic",
                ["topic"],
                registry=registry,
            ),
        )
        for severity in Severity:
            metrics.reviews_opened.labels(severity.value)
        return metrics

    def set_open(self, counts: dict[Severity, int]) -> None:
        for severity, count in counts.items():
            self.reviews_open.labels(severity.value).set(count)
