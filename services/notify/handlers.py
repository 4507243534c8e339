"""The consumers of ``followups.events`` and ``reviews.events``: parse at the edge, decide, queue the messages.

A batch's offsets are committed after every record's messages are queued in ``notify_messages`` (or the record is
dead-lettered): sending happens in the dispatcher, so a slow or refusing mail server or webhook never holds a
partition. Queuing is idempotent (``$setOnInsert`` on the message key), so a redelivered event queues nothing new.
A record that is not a valid event goes to the DLQ at once; event types notify does not know are counted and
skipped; another failure is retried a few times and then dead-lettered; an outage rewinds the batch.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiokafka import ConsumerRecord
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import (
    FOLLOWUP_EVENT_TYPES,
    REVIEW_EVENT_TYPES,
    AnyFollowupEvent,
    AnyReviewEvent,
    followup_event_adapter,
    review_event_adapter,
    validation_summary,
)
from servicekit.clock import Clock
from servicekit.dead_letters import DeadLetters
from servicekit.retries import with_bounded_retries
from services.notify.domain.notices import Notice, facts_after, followup_notice, review_notice
from services.notify.domain.planning import plan
from services.notify.domain.routing import ChannelName, Routing
from services.notify.metrics import NotifyMetrics
from services.notify.repository import MessageRepository, ReviewFactsRepository, SourceRecord

log = logging.getLogger(__name__)

TopicKind = Literal["followups", "reviews"]


class EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str


@dataclass(frozen=True)
class NotKnown:
    event_type: str


@dataclass(frozen=True)
class NotAnEvent:
    reason: str


def parse(kind: TopicKind, body: bytes) -> AnyFollowupEvent | AnyReviewEvent | NotKnown | NotAnEvent:
    known, adapter = (
        (FOLLOWUP_EVENT_TYPES, followup_event_adapter)
        if kind == "followups"
        else (REVIEW_EVENT_TYPES, review_event_adapter)
    )
    try:
        envelope = EventEnvelope.model_validate_json(body)
        if envelope.type not in known:
            return NotKnown(envelope.type)
        event: AnyFollowupEvent | AnyReviewEvent = adapter.validate_json(body)
    except ValidationError as exc:
        return NotAnEvent(f"not a valid {kind} event: {validation_summary(exc)}")
    return event


@dataclass(frozen=True)
class DeliveryRules:
    """How messages are planned: the routing, the channels configured here, and how old an event may be."""

    routing: Routing
    channels: frozenset[ChannelName]
    max_event_age: timedelta


class EventConsumer:
    def __init__(
        self,
        *,
        kind: TopicKind,
        facts: ReviewFactsRepository,
        messages: MessageRepository,
        dead_letters: DeadLetters,
        metrics: NotifyMetrics,
        delivery: DeliveryRules,
        clock: Clock,
        on_queued: Callable[[], None],
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self._kind = kind
        self._facts = facts
        self._messages = messages
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._delivery = delivery
        self._clock = clock
        self._on_queued = on_queued
        self._max_attempts = max_attempts
        self._retry_backoff_seconds = retry_backoff_seconds

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        queued = False
        for record in records:
            queued = await self._handle(record) or queued
        if queued:
            self._on_queued()

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> bool:
        parsed = parse(self._kind, record.value or b"")
        if isinstance(parsed, NotAnEvent):
            await self._dead_letters.send(record, parsed.reason)
            return False
        if isinstance(parsed, NotKnown):
            self._metrics.events.labels("other", "ignored").inc()
            log.info("skipping %s event of type %r: not known to notify", self._kind, parsed.event_type)
            return False
        event = parsed
        attempted = await with_bounded_retries(
            lambda: self._apply(event, record), self._max_attempts, self._retry_backoff_seconds
        )
        if attempted.failure is not None:
            reason = f"failed after {attempted.attempts} attempts: {attempted.failure!r}"
            await self._dead_letters.send(record, reason, attempted.attempts)
            return False
        return bool(attempted.result)

    async def _apply(self, event: AnyFollowupEvent | AnyReviewEvent, record: ConsumerRecord[Any, Any]) -> bool:
        facts = await self._facts.get(event.review_id)
        if self._kind == "reviews":
            review_event: AnyReviewEvent = event  # type: ignore[assignment]
            updated = facts_after(facts, review_event)
            if updated is not None:
                await self._facts.save(updated)
            notice = review_notice(review_event, updated or facts)
        else:
            notice = followup_notice(event, facts)  # type: ignore[arg-type]
        if notice is None:
            self._metrics.events.labels(event.type, "nothing_to_tell").inc()
            return False
        self._metrics.events.labels(event.type, "notified").inc()
        return await self._queue(notice, record)

    async def _queue(self, notice: Notice, record: ConsumerRecord[Any, Any]) -> bool:
        now = self._clock.now()
        published_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        delivery = self._delivery
        decided = plan(
            delivery.routing,
            notice,
            now=now,
            published_at=published_at,
            max_age=delivery.max_event_age,
            channels=delivery.channels,
        )
        suppressed = self._metrics.suppressed
        if decided.stale:
            suppressed.labels("none", notice.kind, "stale").inc()
            return False
        if decided.nobody:
            suppressed.labels("none", notice.kind, "no_recipient").inc()
            log.info("nobody in the routing file receives %s for review %s", notice.kind, notice.review_id)
            return False
        for skipped in decided.not_configured:
            suppressed.labels(skipped.channel, notice.kind, "not_configured").inc()
        inserted = await self._messages.enqueue(notice, decided.planned, SourceRecord.of(record), now)
        for entry, new in zip(decided.planned, inserted, strict=True):
            if not new:
                suppressed.labels(entry.delivery.channel, notice.kind, "duplicate").inc()
            elif entry.timing.held_for is not None:
                suppressed.labels(entry.delivery.channel, notice.kind, entry.timing.held_for).inc()
        return any(inserted)
