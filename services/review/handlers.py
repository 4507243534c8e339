"""The ``incidents.closed`` consumer: one lessons-learned record per incident, announced through the outbox.

Records come in batches (``REVIEW_BATCH_MAX_RECORDS``) and are handled one after the other, in partition order: each
incident opens in its own transaction, so a recurrence finds the reviews opened earlier in the same batch. The batch's
offsets are committed once, after every record of it is stored (or dead-lettered) (``servicekit.batches``); the
records already stored come back after a rewind as duplicates that change nothing (a unique ``incident_key``). The
outbox relay is woken once per batch, not once per record.

A record that cannot be parsed goes to the DLQ at once; one that keeps failing for another reason goes there after
bounded retries, so the partition moves on. While MongoDB is unreachable the batch is redelivered without limit:
parking every record in the DLQ during an outage would only move the problem.
"""

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas import IncidentClosed, validation_summary
from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.retries import with_bounded_retries
from services.review.metrics import ReviewMetrics
from services.review.service import ReviewService

log = logging.getLogger(__name__)


def parse(record: ConsumerRecord[Any, Any]) -> IncidentClosed | str:
    """The incident, or why the record is not one (it goes to the DLQ: retrying cannot help)."""
    try:
        return IncidentClosed.model_validate_json(record.value or b"")
    except ValidationError as exc:
        return f"not a valid IncidentClosed v1: {validation_summary(exc)}"
    except OverflowError:
        # schemas' UTC conversion lets this escape for times like 0001-01-01T00:00+00:01.
        return "not a valid IncidentClosed v1: a time is out of range once converted to UTC"


class IncidentClosedConsumer:
    def __init__(
        self,
        service: ReviewService,
        dead_letters: DeadLetters,
        metrics: ReviewMetrics,
        *,
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self._service = service
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._retry_backoff_seconds = retry_backoff_seconds

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        parsed = [parse(record) for record in records]
        # The relay is woken once, when the batch ends (also when it ends with an exception: what was stored before
        # it is announced), instead of once per review.
        with self._service.announcing_once():
            known = await self._reviewed_already([item for item in parsed if isinstance(item, IncidentClosed)])
            for record, item in zip(records, parsed, strict=True):
                await self._handle(record, item, known)

    async def _reviewed_already(self, incidents: list[IncidentClosed]) -> set[str]:
        """One look-up for the whole batch; only a shortcut, the unique index still decides."""
        if not incidents:
            return set()
        try:
            return await self._service.incidents_with_review(incident.incident_key for incident in incidents)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.warning("looking up the batch's incidents failed (%s); the unique index decides", describe(exc))
            return set()

    async def _handle(self, record: ConsumerRecord[Any, Any], parsed: IncidentClosed | str, known: set[str]) -> None:
        if isinstance(parsed, str):
            await self._dead_letters.send(record, parsed)
            return
        if parsed.incident_key in known:
            self._duplicate(parsed)
            return
        attempted = await with_bounded_retries(
            lambda: self._open_for(parsed), self._max_attempts, self._retry_backoff_seconds
        )
        if attempted.failure is not None:
            reason = f"failed after {attempted.attempts} attempts: {attempted.failure!r}"
            await self._dead_letters.send(record, reason, attempted.attempts)

    async def _open_for(self, incident: IncidentClosed) -> None:
        opened = await self._service.open_for_incident(incident)
        if opened.review is None:
            self._duplicate(incident)
            return
        self._metrics.records_created.labels(opened.review.status, incident.severity).inc()
        log.info("review %s opened for %s (%s)", opened.review.id, incident.incident_key, opened.review.status)

    def _duplicate(self, incident: IncidentClosed) -> None:
        self._metrics.duplicates.inc()
        log.info("incident %s already has a review; nothing to do", incident.incident_key)
