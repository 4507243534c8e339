"""Notify's ``lessons_*`` metrics: by channel and event type (a notice kind, or ``digest``), never a person."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from servicekit.dead_letters import DeadLetterMetrics
from services.notify.domain.notices import NOTICE_KINDS

CHANNELS = ("email", "chat")
SUPPRESSION_REASONS = ("quiet_hours", "digest", "duplicate", "stale", "not_configured", "no_recipient")


@dataclass(frozen=True)
class NotifyMetrics:
    registry: CollectorRegistry
    dead_letters: DeadLetterMetrics
    sent: Counter
    failed: Counter
    suppressed: Counter
    retries: Counter
    events: Counter
    unrecorded: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "NotifyMetrics":
        registry = registry or CollectorRegistry()
        metrics = cls(
            registry=registry,
            dead_letters=DeadLetterMetrics(registry),
            sent=Counter(
                "lessons_notify_messages_sent_total",
                "Messages delivered, by channel and event type (digest: one message grouping several reminders)",
                ["channel", "event_type"],
                registry=registry,
            ),
            failed=Counter(
                "lessons_notify_messages_failed_total",
                "Messages given up on (refused, or still failing after the bounded retries) and dead-lettered",
                ["channel", "event_type"],
                registry=registry,
            ),
            suppressed=Counter(
                "lessons_notify_messages_suppressed_total",
                "Messages not sent now: held for quiet hours or a digest, duplicates of one already queued, events"
                " too old, channels not configured, notices with nobody to receive them",
                ["channel", "event_type", "reason"],
                registry=registry,
            ),
            retries=Counter(
                "lessons_notify_delivery_retries_total",
                "Failed delivery attempts that will be tried again later, by channel",
                ["channel"],
                registry=registry,
            ),
            events=Counter(
                "lessons_notify_events_total",
                "Events read, by type and outcome (notified, nothing_to_tell, ignored)",
                ["type", "outcome"],
                registry=registry,
            ),
            unrecorded=Histogram(
                "lessons_notify_unrecorded_send_seconds",
                "From a send's success to its being recorded as sent: a crash inside this window sends it again",
                ["channel"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                registry=registry,
            ),
        )
        for channel in CHANNELS:
            metrics.retries.labels(channel)
            for kind in NOTICE_KINDS:
                metrics.sent.labels(channel, kind)
                metrics.failed.labels(channel, kind)
        return metrics
