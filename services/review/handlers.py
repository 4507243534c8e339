"""The ``incidents.closed`` subscriber: one lessons-learned record per incident, announced through the outbox.

Records come in batches (``REVIEW_BATCH_MAX_RECORDS``) and are handled one after the other, in partition order: each
incident opens in its own transaction, so a recurrence finds the reviews opened earlier in the same batch. The batch's
offsets are committed once, after every record of it is stored (or dead-lettered); an exception rewinds every
partition of the batch, and the records already stored come back as duplicates that change nothing (a unique
``incident_key``). The outbox relay is woken once per batch, not once per record.

A record that cannot be parsed goes to the DLQ at once; one that keeps failing for another reason goes there after
bounded retries, so the partition moves on. While MongoDB is unreachable the batch is redelivered without limit:
parking every record in the DLQ during an outage would only move the problem.
"""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
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

# Kafka's own default: a consumer that does not come back for more records within this long leaves the group.
KAFKA_MAX_POLL_INTERVAL_MS = 300_000
# What one attempt at a record may take, on top of the pauses between attempts, when sizing the poll interval.
ATTEMPT_ALLOWANCE_SECONDS = 1.0


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Bodies are validated by our own models, so a malformed one reaches the DLQ instead of failing the framework."""
    return message.body


def text_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {name.lower(): value.decode("utf-8", errors="replace") for name, value in record.headers}


def max_poll_interval_ms(batch_max_records: int, max_attempts: int, backoff_seconds: float) -> int:
    """Long enough for a batch whose every record fails all its attempts, never shorter than Kafka's default.

    A batch that outlasts the poll interval makes the consumer leave its group: its commit would fail and the same
    batch would be handed out again and again. A dead consumer is still noticed by its heartbeats, not by this.
    """
    pauses = backoff_seconds * max_attempts * (max_attempts - 1) / 2
    worst_record = pauses + max_attempts * ATTEMPT_ALLOWANCE_SECONDS
    return max(KAFKA_MAX_POLL_INTERVAL_MS, math.ceil(batch_max_records * worst_record * 1000))


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


def parse(record: ConsumerRecord[Any, Any]) -> IncidentClosed | str:
    """The incident, or why the record is not one (it goes to the DLQ: retrying cannot help)."""
    try:
        return IncidentClosed.model_validate_json(record.value or b"")
    except ValidationError as exc:
        return f"not a valid IncidentClosed v1: {validation_summary(exc)}"
    except OverflowError:
        # schemas' UTC conversion lets this escape for times like 0001-01-01T00:00+00:01.
        return "not a valid IncidentClosed v1: a time is out of range once converted to UTC"


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

    def duplicate(incident: IncidentClosed) -> None:
        metrics.duplicates.inc()
        log.info("incident %s already has a review; nothing to do", incident.incident_key)

    async def open_for(incident: IncidentClosed) -> None:
        opened = await service.open_for_incident(incident)
        if opened.review is None:
            duplicate(incident)
            return
        metrics.records_created.labels(opened.review.status, incident.severity).inc()
        log.info("review %s opened for %s (%s)", opened.review.id, incident.incident_key, opened.review.status)

    async def reviewed_already(incidents: list[IncidentClosed]) -> set[str]:
        """One look-up for the whole batch; only a shortcut, the unique index still decides."""
        if not incidents:
            return set()
        try:
            return await service.incidents_with_review(incident.incident_key for incident in incidents)
        except ConnectionFailure:
            log.warning("MongoDB unreachable; the batch will be redelivered")
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        except Exception:
            log.exception("looking up the batch's incidents failed; each one is opened and the index decides")
            return set()

    async def handle(record: ConsumerRecord[Any, Any], parsed: IncidentClosed | str, known: set[str]) -> None:
        if isinstance(parsed, str):
            await dead_letter(record, parsed, 1)
            return
        if parsed.incident_key in known:
            duplicate(parsed)
            return
        try:
            attempts, failure = await with_bounded_retries(
                lambda: open_for(parsed), settings.max_attempts, settings.retry_backoff_seconds
            )
        except ConnectionFailure:
            log.warning("MongoDB unreachable; %s and the rest of its batch will be redelivered", parsed.incident_key)
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        if failure is not None:
            await dead_letter(record, f"failed after {attempts} attempts: {failure!r}", attempts)

    async def process(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        parsed = [parse(record) for record in records]
        # The relay is woken once, when the batch ends (also when it ends with an exception: what was stored before
        # it is announced), instead of once per review.
        with service.announcing_once():
            known = await reviewed_already([item for item in parsed if isinstance(item, IncidentClosed)])
            for record, item in zip(records, parsed, strict=True):
                await handle(record, item, known)

    @broker.subscriber(
        settings.closed_topic,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        max_poll_interval_ms=max_poll_interval_ms(
            settings.batch_max_records, settings.max_attempts, settings.retry_backoff_seconds
        ),
        decoder=undecoded,
    )
    async def on_incidents_closed(message: KafkaMessage) -> None:
        # The batch's offsets are committed after this returns; an exception rewinds every partition in it.
        records = message.raw_message
        await process(records if isinstance(records, (tuple, list)) else (records,))
