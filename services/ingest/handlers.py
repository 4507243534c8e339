"""The ``incidents.raw`` subscriber: vendor bytes in, ``IncidentClosed`` out, or the record to the DLQ.

Thin on purpose: it reads the record, lets the pure sources decide, and performs what they decided. The offset is
committed only after every resulting publish was acknowledged by Kafka (``acks=all``); a publish that fails raises,
so the record is redelivered rather than lost.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from schemas import SOURCES, IncidentClosed, dead_letter_headers
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.deduplication import fresh_incidents
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.ingest.sources import normalise, source_of

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class RecentlyPublished(Protocol):
    """Which incident keys were published within ``window`` (MongoDB in production: ``RecentClosures``)."""

    window: timedelta

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]: ...

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        """Called only after Kafka acknowledged the publishes of ``keys``."""


def text_headers(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """Kafka headers as lower-case text; a header that is not UTF-8 is kept, with replacement characters."""
    return {name.lower(): value.decode("utf-8", errors="replace") for name, value in headers}


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Vendor bodies are parsed by the sources, never by the framework: a body that is not JSON must reach the DLQ."""
    return message.body


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


def register_handlers(
    broker: KafkaBroker,
    *,
    settings: IngestSettings,
    metrics: IngestMetrics,
    recent: RecentlyPublished,
    clock: Clock = lambda: datetime.now(UTC),
) -> None:
    config = settings.normalisation()

    async def publish_closed(incident: IncidentClosed) -> None:
        await broker.publish(
            incident.model_dump_json().encode(),
            topic=settings.closed_topic,
            key=incident.incident_key.encode(),
            headers={"content-type": "application/json", "event-id": str(incident.event_id)},
        )

    async def dead_letter(item: ClassifiedRecord, reason: str) -> None:
        record = item.record
        await broker.publish(
            record.value,
            topic=settings.dlq_topic,
            key=record.key,
            headers=dead_letter_headers(
                item.raw.headers,
                reason=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempts=1,
                failed_at=clock(),
                failed_by="ingest",
            ),
        )
        metrics.dead_lettered.labels(settings.dlq_topic).inc()
        log.warning(
            "invalid %s record %s[%d]@%d sent to %s: %s",
            item.source_label,
            record.topic,
            record.partition,
            record.offset,
            settings.dlq_topic,
            reason,
        )

    async def process(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """One batch: a single de-duplication look-up, all publishes in flight together, then one write."""
        items = [classify_record(record, config) for record in records]
        accepted = [
            incident for item in items if isinstance(item.outcome, Accepted) for incident in item.outcome.incidents
        ]
        now = clock()
        already = await recent.published_since((i.incident_key for i in accepted), now - recent.window)
        fresh = fresh_incidents(accepted, already)
        # Sent together so the producer batches them; each is still acknowledged (acks=all) before we go on.
        await asyncio.gather(
            *(publish_closed(incident) for incident in fresh),
            *(dead_letter(item, item.outcome.reason) for item in items if isinstance(item.outcome, Invalid)),
        )
        # Remembered only once Kafka has them: a crash before this re-publishes, it never loses.
        await recent.remember((incident.incident_key for incident in fresh), now)
        published = {incident.incident_key for incident in fresh}
        for item in items:
            count_outcome(item, published)

    def count_outcome(item: ClassifiedRecord, published: set[str]) -> None:
        outcome, source = item.outcome, item.source_label
        if isinstance(outcome, Accepted):
            keys = [incident.incident_key for incident in outcome.incidents]
            new = [key for key in keys if key in published]
            published.difference_update(new)  # a key repeated later in the batch counts as a duplicate there
            metrics.events_received.labels(source, "accepted" if new else "duplicate").inc()
            metrics.incidents_published.labels(source).inc(len(new))
            metrics.incidents_suppressed.labels(source).inc(len(keys) - len(new))
            log.info("%s record: published %s; duplicates: %d", source, ", ".join(new) or "none", len(keys) - len(new))
        elif isinstance(outcome, Ignored):
            metrics.events_received.labels(source, "ignored").inc()
            log.info("ignored a %s event: %s", source, outcome.reason)
        else:
            metrics.events_received.labels(source, "invalid").inc()

    @broker.subscriber(
        settings.raw_topic,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        decoder=undecoded,
    )
    async def on_raw_incidents(message: KafkaMessage) -> None:
        # The batch's offsets are committed after this returns; an exception rewinds every partition in it.
        records = message.raw_message
        await process(records if isinstance(records, (tuple, list)) else (records,))
