"""The ``reviews.events`` consumer: parse at the edge, track the event, count what it revealed.

Records come in batches (``FOLLOWUP_BATCH_MAX_RECORDS``) and are tracked together, each review's events in partition
order, in a few writes whatever the batch's size (``ReviewTracker.track_batch``); the batch's offsets are committed
once, after every event of it is tracked (or dead-lettered) (``servicekit.batches``), and the backlog gauges move once
per batch. After a rewind the events already tracked come back and change nothing.

The events the batch could not store (their review changed meanwhile, or its write was refused), and every event of a
batch whose writes failed for another reason than an outage, are tracked one by one instead, with bounded retries:
so a single bad event is still isolated and dead-lettered, and the others tracked.

Idempotent in effect: tracking ignores events already applied (same id, or a version not newer than the view's).
Event types follow-up does not know are counted and skipped (newer producers must not break older consumers); a
record that is not a valid review event goes to the DLQ at once; one that keeps failing for another reason goes
there after bounded retries, so the partition moves on. While MongoDB is unreachable the batch is redelivered
rather than dead-lettered: parking every record in the DLQ during an outage would only move the problem.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import REVIEW_EVENT_TYPES, AnyReviewEvent, review_event_adapter, validation_summary
from servicekit.clock import Clock
from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.retries import with_bounded_retries
from services.followup.domain.projection import Applied
from services.followup.metrics import FollowupMetrics
from services.followup.ports import BacklogCounter
from services.followup.tracker import KnownReviews, ReviewTracker

log = logging.getLogger(__name__)


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


class ReviewEventConsumer:
    def __init__(
        self,
        tracker: ReviewTracker,
        views: BacklogCounter,
        dead_letters: DeadLetters,
        metrics: FollowupMetrics,
        *,
        clock: Clock,
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self._tracker = tracker
        self._views = views
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_backoff_seconds = retry_backoff_seconds

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        parsed = [parse(record) for record in records]
        events = [item for item in parsed if not isinstance(item, (NotAnEvent, NotTracked))]
        known = await self._known_reviews(events) if events else KnownReviews()
        batch = iter(await self._track_batch(events, known))
        tracked = False
        for record, item in zip(records, parsed, strict=True):
            applied = None if isinstance(item, (NotAnEvent, NotTracked)) else next(batch)
            tracked = await self._handle(record, item, known, applied) or tracked
        if tracked:
            await self._refresh_backlog()

    async def _track_batch(self, events: list[AnyReviewEvent], known: KnownReviews) -> list[Applied | None]:
        """The batch tracked in a few writes; None for each event left to track on its own."""
        if not events:
            return []
        try:
            return await self._tracker.track_batch(events, known)
        except Exception as exc:
            if is_outage(exc):
                raise
            # Whatever the batch stored is seen again as duplicates, and the timers are reconciled event by event.
            log.warning("tracking the batch failed (%s); its events are tracked one by one", describe(exc))
            return [None] * len(events)

    async def _known_reviews(self, events: list[AnyReviewEvent]) -> KnownReviews:
        """The batch's views and timers in two queries; only a shortcut: without it each event reads its own."""
        try:
            return await self._tracker.known(event.review_id for event in events)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.warning("reading the batch's reviews failed (%s); each event reads its own", describe(exc))
            return KnownReviews()

    async def _handle(
        self, record: ConsumerRecord[Any, Any], parsed: Parsed, known: KnownReviews, applied: Applied | None
    ) -> bool:
        """Count one record's event tracked with the batch (``applied``), or track it on its own, or dead-letter or
        skip the record; True when it reached the tracker."""
        if isinstance(parsed, NotAnEvent):
            await self._dead_letters.send(record, parsed.reason)
            return False
        if isinstance(parsed, NotTracked):
            self._metrics.review_events.labels("other", "ignored").inc()
            log.info("skipping review event of type %r: not tracked", parsed.event_type)
            return False
        event = parsed
        result = applied
        if result is None:
            attempted = await with_bounded_retries(
                lambda: self._tracker.track(event, known), self._max_attempts, self._retry_backoff_seconds
            )
            if attempted.result is None:
                reason = f"failed after {attempted.attempts} attempts: {attempted.failure!r}"
                await self._dead_letters.send(record, reason, attempted.attempts)
                return False
            result = attempted.result
        self._metrics.review_events.labels(event.type, result.outcome.value).inc()
        for fact in result.facts:
            self._metrics.record(fact)
        return True

    async def _refresh_backlog(self) -> None:
        # Once per batch, and without counting: the gauges move by what the batch changed (a count reads every open
        # review, so counting per batch made the cost grow with the data); the sweep recounts now and then.
        try:
            await self._metrics.show_changes(self._views, self._clock.now())
        except Exception:
            # The events are tracked: rewinding the batch for a gauge would redo them all. The next batch or sweep
            # recounts.
            log.exception("recounting the backlog gauges failed; the next batch or sweep recounts them")
