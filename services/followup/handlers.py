"""The ``reviews.events`` subscriber: parse at the edge, track the event, count what it revealed.

Idempotent in effect: tracking ignores events already applied (same id, or a version not newer than the view's).
Event types follow-up does not know are counted and skipped (newer producers must not break older consumers); a
record that is not a valid review event goes to the DLQ at once; one that keeps failing for another reason goes
there after bounded retries, so the partition moves on. While MongoDB is unreachable the record is redelivered
rather than dead-lettered: parking every record in the DLQ during an outage would only move the problem.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel, ConfigDict, ValidationError
from pymongo.errors import ConnectionFailure

from schemas import REVIEW_EVENT_TYPES, AnyReviewEvent, dead_letter_headers, review_event_adapter, validation_summary
from services.followup.clock import Clock
from services.followup.domain.projection import Applied
from services.followup.metrics import FollowupMetrics
from services.followup.repository import ReviewViewRepository
from services.followup.settings import FollowupSettings
from services.followup.tracker import ReviewTracker

log = logging.getLogger(__name__)


class EventEnvelope(BaseModel):
    """Just enough of any review event to route it; the full model is validated once the type is known."""

    model_config = ConfigDict(extra="allow")

    type: str


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Bodies are validated by our own models, so a malformed one reaches the DLQ instead of failing the framework."""
    return message.body


def text_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {name.lower(): value.decode("utf-8", errors="replace") for name, value in record.headers}


async def with_bounded_retries(
    effect: Callable[[], Awaitable[Applied]], max_attempts: int, backoff_seconds: float
) -> tuple[int, Applied | Exception]:
    """Run ``effect`` until it succeeds or fails ``max_attempts`` times; an unreachable database is re-raised."""
    for attempt in range(1, max_attempts + 1):
        try:
            return attempt, await effect()
        except ConnectionFailure:
            raise
        except Exception as exc:
            if attempt == max_attempts:
                return attempt, exc
            log.warning("attempt %d/%d failed: %r; retrying", attempt, max_attempts, exc)
            await asyncio.sleep(backoff_seconds * attempt)
    raise AssertionError("unreachable: the loop returns on its last attempt")


def register_handlers(
    broker: KafkaBroker,
    *,
    settings: FollowupSettings,
    tracker: ReviewTracker,
    views: ReviewViewRepository,
    metrics: FollowupMetrics,
    clock: Clock,
) -> None:
    async def dead_letter(record: ConsumerRecord[Any, Any], reason: str, attempts: int) -> None:
        await broker.publish(
            record.value,
            topic=settings.dlq_topic,
            key=record.key,
            headers=dead_letter_headers(
                text_headers(record),
                reason=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempts=attempts,
                failed_at=clock.now(),
                failed_by="followup",
            ),
        )
        metrics.dead_lettered.labels(settings.dlq_topic).inc()
        log.warning("record %s[%d]@%d sent to the DLQ: %s", record.topic, record.partition, record.offset, reason)

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
            event: AnyReviewEvent | None = (
                review_event_adapter.validate_json(body) if envelope.type in REVIEW_EVENT_TYPES else None
            )
        except ValidationError as exc:
            await dead_letter(record, f"not a valid review event: {validation_summary(exc)}", 1)
            return
        if event is None:
            metrics.review_events.labels("other", "ignored").inc()
            log.info("skipping review event of type %r: not tracked", envelope.type)
            return
        try:
            attempts, result = await with_bounded_retries(
                lambda: tracker.track(event), settings.max_attempts, settings.retry_backoff_seconds
            )
        except ConnectionFailure:
            log.warning("MongoDB unreachable; review event %s will be redelivered", event.event_id)
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        if isinstance(result, Exception):
            await dead_letter(record, f"failed after {attempts} attempts: {result!r}", attempts)
            return
        metrics.review_events.labels(event.type, result.outcome.value).inc()
        for fact in result.facts:
            metrics.record(fact)
        await metrics.refresh_backlog(views, clock.now())
