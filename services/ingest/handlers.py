"""The ``incidents.raw`` consumer: vendor bytes in, ``IncidentClosed`` out, or the record to the DLQ.

Thin on purpose: it reads the records, lets the pure sources decide, and performs what they decided. A batch costs
one de-duplication look-up, its publishes in flight together (each acknowledged by Kafka, ``acks=all``), and one
write recording their keys, which runs while the next batch is parsed (``remembering``). The offsets are committed
once the publishes are acknowledged (``servicekit.batches``). An incident that Kafka refuses for good (too
large, not encodable) sends its record to the DLQ with the reason instead of stalling the partition; an outage
rewinds the batch, which then re-publishes at most what was not remembered.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from schemas import SOURCES, IncidentClosed
from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.handover import hand_over
from servicekit.headers import text_headers
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.deduplication import fresh_incidents
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.metrics import IngestMetrics
from services.ingest.remembering import BackgroundRecording, RecentlyPublished
from services.ingest.sources import normalise, source_of

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def classify(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    """Normalise, turning an unexpected adapter failure into an invalid outcome: a bad record never stops ingest."""
    try:
        return normalise(raw, config)
    except Exception as exc:
        log.exception("source adapter raised; the record goes to the DLQ")
        return Invalid(f"adapter error: {type(exc).__name__}")


@dataclass(frozen=True)
class ClassifiedRecord:
    record: ConsumerRecord[Any, Any]
    raw: RawIncident
    source_label: str
    outcome: Outcome


def classify_record(record: ConsumerRecord[Any, Any], config: NormalisationConfig) -> ClassifiedRecord:
    raw = RawIncident(body=record.value or b"", headers=text_headers(record.headers))
    source = source_of(raw)
    # An unknown source name never becomes a label value: it could be anything a sender typed.
    return ClassifiedRecord(record, raw, source if source in SOURCES else "unknown", classify(raw, config))


# An incident to publish, with the record it came from (where it goes to the DLQ if Kafka refuses it) and its JSON.
Fresh = list[tuple[IncidentClosed, ClassifiedRecord, bytes]]


class RawIncidentConsumer:
    def __init__(
        self,
        broker: KafkaBroker,
        dead_letters: DeadLetters,
        recent: RecentlyPublished,
        metrics: IngestMetrics,
        *,
        config: NormalisationConfig,
        closed_topic: str,
        clock: Clock,
    ) -> None:
        self._broker = broker
        self._dead_letters = dead_letters
        self._recent = recent
        self._recording = BackgroundRecording(recent)
        self._metrics = metrics
        self._config = config
        self._closed_topic = closed_topic
        self._clock = clock

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        items = [classify_record(record, self._config) for record in records]
        # The earlier batches' keys, written while these records were parsed, are in before this batch looks up.
        await self._recording.settled()
        now = self._clock()
        fresh = await self._fresh(items, now)
        refusals = await self._publish(fresh)
        # Recorded only once Kafka has them (a crash before this re-publishes, it never loses), while the next batch
        # is parsed: services.ingest.remembering.
        published = [incident for incident, _, _ in fresh if incident.incident_key not in refusals]
        self._recording.record((incident.incident_key for incident in published), now)
        invalid = [(item, item.outcome.reason) for item in items if isinstance(item.outcome, Invalid)]
        refused = [(item, reason) for incident, item, _ in fresh if (reason := refusals.get(incident.incident_key))]
        for item, reason in invalid + refused:  # held until the batch has taken effect (servicekit.batches)
            await self._dead_letters.send(item.record, reason)
        self._count(items, {incident.incident_key for incident in published}, set(refusals))

    async def flush(self) -> None:
        """Record the keys of every batch handled so far (on shutdown, once consuming stopped); an outage is logged."""
        await self._recording.flushed()

    async def _fresh(self, items: list[ClassifiedRecord], now: datetime) -> Fresh:
        """Incidents not published within the window, each with the record it came from and its JSON."""
        accepted = [
            (incident, item, item.outcome.json_of(position))
            for item in items
            if isinstance(item.outcome, Accepted)
            for position, incident in enumerate(item.outcome.incidents)
        ]
        keys = (incident.incident_key for incident, _, _ in accepted)
        already = await self._recent.published_since(keys, now - self._recent.window)
        fresh = {id(incident) for incident in fresh_incidents((incident for incident, _, _ in accepted), already)}
        return [entry for entry in accepted if id(entry[0]) in fresh]

    async def _publish(self, fresh: Fresh) -> dict[str, str]:
        """Publish together (the producer batches them); the incidents Kafka refused for good, with why.

        Each publish is only handed to the producer here (``no_confirm``), then every acknowledgement is awaited at
        once: the same ``acks=all`` writes in flight together, without a task per incident. An outage is raised once
        every publish has ended, so what was acknowledged is remembered by nobody and re-published on redelivery: a
        duplicate that review recognises, never a loss.
        """
        sends = [await self._send(incident, payload) for incident, _, payload in fresh]
        pending = [send for send in sends if asyncio.isfuture(send)]
        if pending:
            await asyncio.wait(pending)
        refusals: dict[str, str] = {}
        for (incident, _, _), send in zip(fresh, sends, strict=True):
            failure = send.exception() if asyncio.isfuture(send) else send
            if isinstance(failure, BaseException):
                if is_outage(failure) or not isinstance(failure, Exception):
                    raise failure
                refusals[incident.incident_key] = f"IncidentClosed could not be published: {describe(failure)}"
        return refusals

    async def _send(self, incident: IncidentClosed, payload: bytes) -> "asyncio.Future[Any] | Exception | None":
        """The acknowledgement to await (``None`` from the in-memory test broker), or why the producer refused it."""
        event_id = str(incident.event_id)
        try:
            # The broker's producer without FastStream's per-message metrics (see servicekit.handover): ingest counts
            # what Kafka acknowledged itself. The event id traces the record, instead of a random correlation id.
            return await hand_over(
                self._broker,
                payload,
                topic=self._closed_topic,
                key=incident.incident_key.encode(),
                headers={"content-type": "application/json", "event-id": event_id},
                correlation_id=event_id,
            )
        except Exception as exc:
            return exc

    def _count(self, items: list[ClassifiedRecord], published: set[str], refused: set[str]) -> None:
        """Metrics and log lines for the batch: each counter moved once per label set, one log line per outcome.

        Per record they cost about as much CPU as the rest of ingest's own work on it (an alert storm is thousands).
        """
        received: Counter[tuple[str, str]] = Counter()
        sent: Counter[str] = Counter()
        suppressed: Counter[str] = Counter()
        new_keys: list[str] = []
        ignored: Counter[tuple[str, str]] = Counter()
        for item in items:
            outcome, source = item.outcome, item.source_label
            if isinstance(outcome, Accepted):
                keys = [incident.incident_key for incident in outcome.incidents]
                new = [key for key in keys if key in published]
                published.difference_update(new)  # a key repeated later in the batch counts as a duplicate there
                unpublishable = sum(key in refused for key in keys)
                received[source, "accepted" if new else "invalid" if unpublishable else "duplicate"] += 1
                sent[source] += len(new)
                suppressed[source] += len(keys) - len(new) - unpublishable
                new_keys += new
            elif isinstance(outcome, Ignored):
                received[source, "ignored"] += 1
                ignored[source, outcome.reason] += 1
            else:
                received[source, "invalid"] += 1
        metrics = self._metrics
        for (source, label), count in received.items():
            metrics.events_received.labels(source, label).inc(count)
        for source, count in sent.items():
            metrics.incidents_published.labels(source).inc(count)
        for source, count in suppressed.items():
            metrics.incidents_suppressed.labels(source).inc(count)
        if sent or suppressed:
            log.info(
                "published %d incidents (%s); duplicates: %d",
                len(new_keys),
                ", ".join(new_keys) or "none",
                sum(suppressed.values()),
            )
        for (source, reason), count in ignored.items():
            log.info("ignored %d %s event(s): %s", count, source, reason)
