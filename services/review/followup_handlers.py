"""The ``followups.events`` consumer: what follow-up did, kept beside each review, and remediation verdicts recorded.

Its own consumer group (``REVIEW_FOLLOWUPS_GROUP_ID``), batches and DLQ (``followups.events.dlq``), like the
``incidents.closed`` consumer: records are handled one after the other in partition order, offsets are committed
after the whole batch took effect, the outbox relay is woken once per batch. Every effect is idempotent by event id,
so a redelivered batch changes nothing twice.

A record that is not a follow-up event goes to the DLQ at once; so does one about a review or an action item review
does not have (retrying cannot help). Other failures are retried a few times before the DLQ; an unreachable MongoDB
rewinds the batch instead.
"""

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas import AnyFollowupEvent, followup_event_adapter, validation_summary
from servicekit.dead_letters import DeadLetters
from servicekit.retries import with_bounded_retries
from services.review.domain.refusals import ReviewRefusedError
from services.review.ports import ReviewNotFoundError
from services.review.service import ReviewService

log = logging.getLogger(__name__)


def parse_followup_event(record: ConsumerRecord[Any, Any]) -> AnyFollowupEvent | str:
    """The event, or why the record is not one (it goes to the DLQ)."""
    try:
        return followup_event_adapter.validate_json(record.value or b"")
    except ValidationError as exc:
        return f"not a valid follow-up event: {validation_summary(exc)}"
    except OverflowError:
        return "not a valid follow-up event: a time is out of range once converted to UTC"


class FollowupEventsConsumer:
    def __init__(
        self,
        service: ReviewService,
        dead_letters: DeadLetters,
        *,
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self._service = service
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._retry_backoff_seconds = retry_backoff_seconds

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        with self._service.announcing_once():
            for record in records:
                await self._handle(record, parse_followup_event(record))

    async def _handle(self, record: ConsumerRecord[Any, Any], parsed: AnyFollowupEvent | str) -> None:
        if isinstance(parsed, str):
            await self._dead_letters.send(record, parsed)
            return
        attempted = await with_bounded_retries(
            lambda: self._apply(parsed), self._max_attempts, self._retry_backoff_seconds
        )
        if attempted.failure is not None:
            reason = f"failed after {attempted.attempts} attempts: {attempted.failure!r}"
            await self._dead_letters.send(record, reason, attempted.attempts)
        elif attempted.result is not None:
            await self._dead_letters.send(record, attempted.result, attempted.attempts)

    async def _apply(self, event: AnyFollowupEvent) -> str | None:
        """None once applied; the reason when it never can be (the review or the item does not exist)."""
        try:
            await self._service.apply_followup_event(event)
        except ReviewNotFoundError:
            return f"{event.type} {event.event_id}: no review {event.review_id}"
        except ReviewRefusedError as exc:
            return f"{event.type} {event.event_id}: {exc.message}"
        return None
