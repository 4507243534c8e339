"""The ``reviews.events`` subscriber: parse at the edge, track the event, count what it revealed.

Records come in batches (``FOLLOWUP_BATCH_MAX_RECORDS``) and are tracked one after the other, in partition order, as
before; the batch's offsets are committed once, after every event of it is tracked (or dead-lettered), and the
backlog gauges are recounted once per batch instead of once per event. An exception rewinds every partition of the
batch: the events already tracked come back and change nothing.

Idempotent in effect: tracking ignores events already applied (same id, or a version not newer than the view's).
Event types follow-up does not know are counted and skipped (newer producers must not break older consumers); a
record that is not a valid review event goes to the DLQ at once; one that keeps failing for another reason goes
there after bounded retries, so the partition moves on. While MongoDB is unreachable the batch is redelivered
rather than dead-lettered: parking every record in the DLQ during an outage would only move the problem.
"""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
from services.followup.tracker import KnownReviews, ReviewTracker

log = logging.getLogger(__name__)

# Kafka's own default: a consumer that does not come back for more records within this long leaves the group.
KAFKA_MAX_POLL_INTERVAL_MS = 300_000
# What one attempt at an event may take, on top of the pauses between attempts, when sizing the poll interval.
ATTEMPT_ALLOWANCE_SECONDS = 1.0


def max_poll_interval_ms(batch_max_records: int, max_attempts: int, backoff_seconds: float) -> int:
    """Long enough for a batch whose every record fails all its attempts, never shorter than Kafka's default.

    A batch that outlasts the poll interval makes the consumer leave its group: its commit would fail and the same
    batch would be handed out again and again. A dead consumer is still noticed by its heartbeats, not by this.
    """
    pauses = backoff_seconds * max_attempts * (max_attempts - 1) / 2
    worst_record = pauses + max_attempts * ATTEMPT_ALLOWANCE_SECONDS
    return max(KAFKA_MAX_POLL_INTERVAL_MS, math.ceil(batch_max_records * worst_record * 1000))


class EventEnvelope(BaseModel):
    """Just enough of any review event to route it; the full model is validated once the type is known."""

    model_config = ConfigDict(extra="allow")

    type: str


@dataclass(frozen=True)
class NotTracked:
    """A review event of a type follow-up does not track (a newer producer's): counted and skipped."""

    event_type: str


@dataclass(frozen=True)
class NotAnEvent:
    """Not a valid review event: it goes to the DLQ at once (retrying cannot help)."""

    reason: str


Parsed = AnyReviewEvent | NotTracked | NotAnEvent


def parse(record: ConsumerRecord[Any, Any]) -> Parsed:
    body = record.value or b""
    try:
        envelope = EventEnvelope.model_validate_json(body)
        if envelope.type not in REVIEW_EVENT_TYPES:
            return NotTracked(envelope.type)
        return review_event_adapter.validate_json(body)
    except ValidationError as exc:
        return NotAnEvent(f"not a valid review event: {validation_summary(exc)}")


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

    async def known_reviews(events: list[AnyReviewEvent]) -> KnownReviews:
        """The batch's views and timers in two queries; only a shortcut: without it each event reads its own."""
        try:
            return await tracker.known(event.review_id for event in events)
        except ConnectionFailure:
            log.warning("MongoDB unreachable; the batch will be redelivered")
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        except Exception:
            log.exception("reading the batch's reviews failed; each event reads its own")
            return KnownReviews()

    async def handle(record: ConsumerRecord[Any, Any], parsed: Parsed, known: KnownReviews) -> bool:
        """Track one record's event (or dead-letter or skip the record); True when it reached the tracker."""
        if isinstance(parsed, NotAnEvent):
            await dead_letter(record, parsed.reason, 1)
            return False
        if isinstance(parsed, NotTracked):
            metrics.review_events.labels("other", "ignored").inc()
            log.info("skipping review event of type %r: not tracked", parsed.event_type)
            return False
        event = parsed
        try:
            attempts, result = await with_bounded_retries(
                lambda: tracker.track(event, known), settings.max_attempts, settings.retry_backoff_seconds
            )
        except ConnectionFailure:
            log.warning(
                "MongoDB unreachable; review event %s and the rest of its batch will be redelivered", event.event_id
            )
            await asyncio.sleep(settings.retry_backoff_seconds)
            raise
        if isinstance(result, Exception):
            await dead_letter(record, f"failed after {attempts} attempts: {result!r}", attempts)
            return False
        metrics.review_events.labels(event.type, result.outcome.value).inc()
        for fact in result.facts:
            metrics.record(fact)
        return True

    async def process(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        parsed = [parse(record) for record in records]
        events = [item for item in parsed if not isinstance(item, (NotAnEvent, NotTracked))]
        known = await known_reviews(events) if events else KnownReviews()
        tracked = False
        for record, item in zip(records, parsed, strict=True):
            tracked = await handle(record, item, known) or tracked
        if tracked:
            await refresh_backlog()

    async def refresh_backlog() -> None:
        # Once per batch: the aggregations read the whole view, so once per event made a burst quadratic.
        try:
            await metrics.refresh_backlog(views, clock.now())
        except Exception:
            # The events are tracked: rewinding the batch for a gauge would redo them all. The next batch or sweep
            # recounts.
            log.exception("recounting the backlog gauges failed; the next batch or sweep recounts them")

    @broker.subscriber(
        settings.review_events_topic,
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
    async def on_review_events(message: KafkaMessage) -> None:
        # The batch's offsets are committed after this returns; an exception rewinds every partition in it.
        records = message.raw_message
        await process(records if isinstance(records, (tuple, list)) else (records,))
