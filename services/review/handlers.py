"""The ``incidents.closed`` subscriber: one lessons-learned record per incident, announced through the outbox.

The offset is committed only after the record (and its outbox entries) is stored. A redelivered or duplicate
event finds the unique ``incident_key`` taken and changes nothing. A record that cannot be parsed goes to the DLQ at
once; one that keeps failing for another reason goes there after bounded retries, so the partition moves on.
While MongoDB is unreachable the record is retried without limit: parking every record in the DLQ during an outage
would only move the problem.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from schemas import IncidentClosed, dead_letter_headers, validation_summary
from services.review.metrics import ReviewMetrics
from services.review.service import ReviewService
from services.review.settings import ReviewSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Bodies are validated by our own models, so a malformed one reaches the DLQ instead of failing the framework."""
    return message.body


def text_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {name.lower(): value.decode("utf-8", errors="replace") for name, value in record.headers}


async def with_bounded_retries(
    effect: Callable[[], Awaitable[None]], max_attempts: int, backoff_seconds: float
) -> tuple[int, Exception | None]:
    """Run ``effect`` until it succeeds or fails ``max_attempts`` times; an unreachable database is re-raised."""
    for attempt in range(1, max_attempts + 1):
        try:
            await effect()
        except ConnectionFailure:
            raise
        except Exception as exc:
            if attempt == max_attempts:
                return attempt, exc
            log.warning("attempt %d/%d failed: %r; retrying", attempt, max_attempts, exc)
            await asyncio.sleep(backoff_seconds * attempt)
        else:
            return attempt, None
    raise AssertionError("unreachable: the loop returns on its last attempt")


def register_handlers(
    broker: KafkaBroker,
    *,
    settings: ReviewSettings,
    service: ReviewService,
    metrics: ReviewMetrics,
    clock: Clock = lambda: datetime.now(UTC),
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
                failed_at=clock(),
                failed_by="review",
            ),
        )
        metrics.dead_lettered.labels(settings.dlq_topic).inc()
        log.warning(
            "record %s[%d]@%d sent to %s: %s", record.topic, record.partition, record.offset, settings.dlq_topic, reason
        )

    async def open_for(incident: IncidentClosed) -> None:
        opened = await service.open_for_incident(incident)
        if opened.review is None:
            metrics.duplicates.inc()
            log.info("incident %s already has a review; nothing to do", incident.incident_key)
            return
        metrics.records_created.labels(opened.review.status, incident.severity).inc()
        log.info("review %s opened for %s (%s)", opened.review.id, incident.incident_key, opened.review.status)

    @broker.subscriber(
        settings.closed_topic,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=undecoded,
    )
    async def on_incident_closed(message: KafkaMessage) -> None:
        record = message.raw_message
        if isinstance(record, tuple):  # only batch subscribers get tuples; this one is not one
            raise TypeError("expected a single Kafka record")
        try:
            incident = IncidentClosed.model_validate_json(record.value or b"")
        except ValidationError as exc:
            await dead_letter(record, f"not a valid IncidentClosed v1: {validation_summary(exc)}", 1)
            return
        except OverflowError:
            # schemas' UTC conversion lets this escape for times like 0001-01-01T00:00+00:01; retrying cannot help.
            await dead_letter(record, "not a valid IncidentClosed v1: a time is out of range once converted to UTC", 1)
            return
        try:
            attempts, failure = await with_bounded_retries(
                lambda: open_for(incident), settings.max_attempts, settings.retry_backoff_seconds
            )
        except ConnectionFailure:
            log.warning("MongoDB unreachable; %s will be redelivered", incident.incident_key)
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        if failure is not None:
            await dead_letter(record, f"failed after {attempts} attempts: {failure!r}", attempts)
