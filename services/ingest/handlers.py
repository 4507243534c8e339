"""The ``incidents.raw`` subscriber: vendor bytes in, ``IncidentClosed`` out, or the record to the DLQ.

Thin on purpose: it reads the record, lets the pure sources decide, and performs what they decided. The offset is
committed only after every resulting publish was acknowledged by Kafka (``acks=all``); a publish that fails raises,
so the record is redelivered rather than lost.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

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

    @broker.subscriber(
        settings.raw_topic,
        group_id=settings.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=undecoded,
    )
    async def on_raw_incident(message: KafkaMessage) -> None:
        record = message.raw_message
        if isinstance(record, tuple):  # only batch subscribers get tuples; this one is not one
            raise TypeError("expected a single Kafka record")
        raw = RawIncident(body=record.value or b"", headers=text_headers(record.headers))
        source = source_of(raw)
        source_label = source if source in SOURCES else "unknown"
        outcome = classify(raw, config)
        if isinstance(outcome, Accepted):
            now = clock()
            keys = [incident.incident_key for incident in outcome.incidents]
            fresh = fresh_incidents(outcome.incidents, await recent.published_since(keys, now - recent.window))
            for incident in fresh:
                await publish_closed(incident)
            # Remembered only once Kafka has them: a crash before this re-publishes, it never loses.
            await recent.remember((incident.incident_key for incident in fresh), now)
            metrics.events_received.labels(source_label, "accepted" if fresh else "duplicate").inc()
            metrics.incidents_published.labels(source_label).inc(len(fresh))
            metrics.incidents_suppressed.labels(source_label).inc(len(outcome.incidents) - len(fresh))
            log.info(
                "%s record: published %s; already published within the window: %s",
                source_label,
                ", ".join(i.incident_key for i in fresh) or "none",
                ", ".join(sorted(set(keys) - {i.incident_key for i in fresh})) or "none",
            )
        elif isinstance(outcome, Ignored):
            metrics.events_received.labels(source_label, "ignored").inc()
            log.info("ignored a %s event: %s", source_label, outcome.reason)
        else:
            await broker.publish(
                record.value,
                topic=settings.dlq_topic,
                key=record.key,
                headers=dead_letter_headers(
                    raw.headers,
                    reason=outcome.reason,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    attempts=1,
                    failed_at=clock(),
                    failed_by="ingest",
                ),
            )
            metrics.events_received.labels(source_label, "invalid").inc()
            metrics.dead_lettered.labels(settings.dlq_topic).inc()
            log.warning(
                "invalid %s record %s[%d]@%d sent to %s: %s",
                source_label,
                record.topic,
                record.partition,
                record.offset,
                settings.dlq_topic,
                outcome.reason,
            )
