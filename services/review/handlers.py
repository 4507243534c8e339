"""The ``incidents.closed`` consumer: one lessons-learned record per incident, announced through the outbox.

Records come in batches (``REVIEW_BATCH_MAX_RECORDS``). A record that cannot be parsed goes to the DLQ at once; the
incidents of the batch that have no review yet are opened together, in one transaction and a fixed number of round
trips, with the links a recurrence would get if they were opened one after the other in partition order
(``ReviewService.open_for_incidents``). When that fails for a reason other than an outage (another replica opened
one of them meanwhile, a person edited an earlier review, a record that breaks something), the batch's incidents are
opened one by one instead, each in its own transaction: one that keeps failing goes to the DLQ after bounded
retries, so the partition moves on. The batch's offsets are committed once, after every record of it is stored (or
dead-lettered) (``servicekit.batches``); the records already stored come back after a rewind as duplicates that
change nothing (a unique ``incident_key``). The outbox relay is woken once per batch, not once per record.

While MongoDB is unreachable the batch is redelivered without limit: parking every record in the DLQ during an
outage would only move the problem.
"""

import logging
from collections.abc import Sequence
from typing import Any, TypeGuard

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from schemas import IncidentClosed, validation_summary
from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.retries import with_bounded_retries
from services.review.metrics import ReviewMetrics
from services.review.service import Opened, ReviewService

log = logging.getLogger(__name__)


def _is_new(item: IncidentClosed | str, known: set[str]) -> TypeGuard[IncidentClosed]:
    return isinstance(item, IncidentClosed) and item.incident_key not in known


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
        # it is announced), instead of once per review. Dead letters are held until the batch has taken effect
        # (servicekit.batches), so a batch rewound by an outage sends none twice.
        with self._service.announcing_once():
            known = await self._reviewed_already([item for item in parsed if isinstance(item, IncidentClosed)])
            for record, item in zip(records, parsed, strict=True):
                if isinstance(item, str):
                    await self._dead_letters.send(record, item)
            new = [(record, item) for record, item in zip(records, parsed, strict=True) if _is_new(item, known)]
            if not await self._opened_together([incident for _, incident in new]):
                for record, incident in new:
                    await self._open_alone(record, incident)
        # Counted once the batch has taken effect: a batch rewound before that would count them again.
        for item in parsed:
            if isinstance(item, IncidentClosed) and item.incident_key in known:
                self._duplicate(item)

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

    async def _opened_together(self, incidents: list[IncidentClosed]) -> bool:
        """Open the batch's new incidents together; False when they must be opened one by one instead."""
        if not incidents:
            return True
        try:
            outcomes = await self._service.open_for_incidents(incidents)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.warning("opening %d incidents together failed (%s); one by one", len(incidents), describe(exc))
            return False
        for incident, opened in zip(incidents, outcomes, strict=True):
            self._opened(incident, opened)
        return True

    async def _open_alone(self, record: ConsumerRecord[Any, Any], incident: IncidentClosed) -> None:
        attempted = await with_bounded_retries(
            lambda: self._open_for(incident), self._max_attempts, self._retry_backoff_seconds
        )
        if attempted.failure is not None:
            reason = f"failed after {attempted.attempts} attempts: {attempted.failure!r}"
            await self._dead_letters.send(record, reason, attempted.attempts)

    async def _open_for(self, incident: IncidentClosed) -> None:
        self._opened(incident, await self._service.open_for_incident(incident))

    def _opened(self, incident: IncidentClosed, opened: Opened) -> None:
        if opened.review is None:
            self._duplicate(incident)
            return
        self._metrics.records_created.labels(opened.review.status, incident.severity).inc()
        log.info("review %s opened for %s (%s)", opened.review.id, incident.incident_key, opened.review.status)

    def _duplicate(self, incident: IncidentClosed) -> None:
        self._metrics.duplicates.inc()
        log.info("incident %s already has a review; nothing to do", incident.incident_key)
