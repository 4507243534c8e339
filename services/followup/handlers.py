"""The ``reviews.events`` subscriber: keeps follow-up's view of every review and its gauges up to date.

Idempotent in effect: a review is tracked on first sight only, so redelivered or duplicate events change nothing.
Event types follow-up does not know yet are counted and skipped (newer producers must not break older consumers);
a record that is not an event at all goes to the DLQ.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import ReviewOpened, dead_letter_headers, validation_summary
from services.followup.domain.tracking import open_counts
from services.followup.metrics import FollowupMetrics
from services.followup.repository import TrackedReviewRepository
from services.followup.settings import FollowupSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class EventEnvelope(BaseModel):
    """Just enough of any review event to route it; the full model is validated once the type is known."""

    model_config = ConfigDict(extra="allow")

    type: str


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Bodies are validated by our own models, so a malformed one reaches the DLQ instead of failing the framework."""
    return message.body


async def refresh_open_gauge(repository: TrackedReviewRepository, metrics: FollowupMetrics) -> None:
    metrics.set_open(open_counts(await repository.count_open_by_severity()))


def register_handlers(
    broker: KafkaBroker,
    *,
    settings: FollowupSettings,
    repository: TrackedReviewRepository,
    metrics: FollowupMetrics,
    clock: Clock = lambda: datetime.now(UTC),
) -> None:
    @broker.subscriber(
        settings.review_events_topic,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=undecoded,
    )
    async def on_review_event(message: KafkaMessage) -> None:
        record = message.raw_message
        if isinstance(record, tuple):  # only batch subscribers get tuples; this one is not one
            raise TypeError("expected a single Kafka record")
        body = record.value or b""
        try:
            envelope = EventEnvelope.model_validate_json(body)
            event = ReviewOpened.model_validate_json(body) if envelope.type == "ReviewOpened" else None
        except ValidationError as exc:
            reason = f"not a valid review event: {validation_summary(exc)}"
            await broker.publish(
                body,
                topic=settings.dlq_topic,
                key=record.key,
                headers=dead_letter_headers(
                    {name.lower(): value.decode("utf-8", errors="replace") for name, value in record.headers},
                    reason=reason,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    attempts=1,
                    failed_at=clock(),
                    failed_by="followup",
                ),
            )
            metrics.dead_lettered.labels(settings.dlq_topic).inc()
            log.warning("record %s[%d]@%d sent to the DLQ: %s", record.topic, record.partition, record.offset, reason)
            return
        if event is None:
            metrics.review_events.labels("other", "ignored").inc()
            log.info("skipping review event of type %r: not tracked yet", envelope.type)
            return
        if await repository.track_opened(event):
            metrics.review_events.labels(event.type, "tracked").inc()
            if event.status.value != "not_required":
                metrics.reviews_opened.labels(event.severity.value).inc()
        else:
            metrics.review_events.labels(event.type, "duplicate").inc()
        await refresh_open_gauge(repository, metrics)
