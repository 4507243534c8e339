"""Dead-lettering that always ends: the record's copy, or a bounded one, or a counted and logged loss of the copy.

A record goes to ``<topic>.dlq`` with its key, bytes and headers plus the ``dlq-*`` headers (``schemas.dead_letter``).
A copy that Kafka refuses for good (too large once the headers are added, a header that cannot be encoded) is sent
again bounded: the first bytes of the value, the reason, the original's size and SHA-256, so an operator can find
and replay the original from the source topic. Only an outage (Kafka unreachable) is raised: the batch is then
redelivered, which is what an outage calls for. Nothing here ever stalls a partition on one record.

Within ``held_until_done`` (each batch, in ``servicekit.batches``) copies are held and sent in order once the batch
has taken effect: a batch rewound by an outage halfway, or handled again record by record, would otherwise send the
records it had dead-lettered before the failure a second time.
"""

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter

from schemas import dead_letter_headers
from servicekit.failures import describe, is_outage
from servicekit.headers import encodable, text_headers

log = logging.getLogger(__name__)

# What is held per task (a batch's handling), so that two consumers sharing an instance never mix their records.
Held = list[tuple[ConsumerRecord[Any, Any], str, int]]

# What a bounded copy keeps of the value and of each original header: far under any record limit.
BOUNDED_VALUE_BYTES = 64 * 1024
BOUNDED_HEADER_CHARS = 256
BOUNDED_HEADER_COUNT = 32
TRUNCATED = "dlq-truncated"
ORIGINAL_BYTES = "dlq-original-bytes"
ORIGINAL_SHA256 = "dlq-original-sha256"


class DeadLetterMetrics:
    """Counted on the service's own registry, beside its ``lessons_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "lessons_dlq_messages_total", "Records sent to a dead-letter topic", ["topic"], registry=registry
        )
        self.bounded = Counter(
            "lessons_dlq_bounded_total",
            "Dead-letter copies Kafka refused whole, sent bounded (truncated, with the original's hash)",
            ["topic"],
            registry=registry,
        )
        self.failed = Counter(
            "lessons_dlq_failures_total",
            "Records that could not be dead-lettered at all, not even bounded: logged with their hash and skipped",
            ["topic"],
            registry=registry,
        )


class DeadLetters:
    """Sends records that cannot be processed to one DLQ topic, and counts them."""

    def __init__(
        self,
        broker: KafkaBroker,
        topic: str,
        *,
        failed_by: str,
        clock: Callable[[], datetime],
        metrics: DeadLetterMetrics,
    ) -> None:
        self._broker = broker
        self.topic = topic
        self._failed_by = failed_by
        self._clock = clock
        self.metrics = metrics
        self._held: ContextVar[Held | None] = ContextVar(f"dead_letters_held_{topic}", default=None)

    @asynccontextmanager
    async def held_until_done(self) -> AsyncIterator[None]:
        """Hold what is sent within, and send it in order when the block ends without an exception (else drop it)."""
        held: Held = []
        token = self._held.set(held)
        try:
            yield
        finally:
            self._held.reset(token)
        for record, reason, attempts in held:
            await self.send(record, reason, attempts)

    async def send(self, record: ConsumerRecord[Any, Any], reason: str, attempts: int = 1) -> None:
        """Return once a copy is in the DLQ (or could not be written for good: counted); raise only on an outage.

        Within ``held_until_done``: return at once, the copy held until the block ends.
        """
        held = self._held.get()
        if held is not None:
            held.append((record, reason, attempts))
            return
        value: bytes = record.value or b""
        headers = self._headers(text_headers(record.headers), record, reason, attempts)
        try:
            await self._publish(value, record.key, headers)
        except Exception as exc:
            if is_outage(exc):
                raise
            await self._send_bounded(record, value, headers, describe(exc))
            return
        self.metrics.sent.labels(self.topic).inc()
        log.warning(
            "record %s[%d]@%d sent to %s: %s", record.topic, record.partition, record.offset, self.topic, reason[:500]
        )

    async def _send_bounded(
        self, record: ConsumerRecord[Any, Any], value: bytes, headers: Mapping[str, str], refusal: str
    ) -> None:
        kept = dict(list(headers.items())[:BOUNDED_HEADER_COUNT])
        bounded = {name[:BOUNDED_HEADER_CHARS]: text[:BOUNDED_HEADER_CHARS] for name, text in kept.items()}
        bounded.update(self._headers({}, record, headers.get("dlq-reason", ""), int(headers.get("dlq-attempts", "1"))))
        bounded[TRUNCATED] = f"the full copy was refused ({refusal})"
        bounded[ORIGINAL_BYTES] = str(len(value))
        bounded[ORIGINAL_SHA256] = hashlib.sha256(value).hexdigest()
        key = record.key[:BOUNDED_HEADER_CHARS] if isinstance(record.key, bytes) else None
        try:
            await self._publish(value[:BOUNDED_VALUE_BYTES], key, bounded)
        except Exception as exc:
            if is_outage(exc):
                raise
            # Nothing left to try: say so loudly, count it, and let the partition move on.
            self.metrics.failed.labels(self.topic).inc()
            log.error(  # noqa: TRY400 (the reason is in the message; a traceback adds nothing)
                "record %s[%d]@%d could not be dead-lettered, not even bounded (%s); sha256 %s, %d bytes: %s",
                record.topic,
                record.partition,
                record.offset,
                describe(exc),
                bounded[ORIGINAL_SHA256],
                len(value),
                bounded.get("dlq-reason", "")[:500],
            )
            return
        self.metrics.sent.labels(self.topic).inc()
        self.metrics.bounded.labels(self.topic).inc()
        log.warning(
            "record %s[%d]@%d sent to %s as a bounded copy (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            self.topic,
            refusal,
            bounded.get("dlq-reason", "")[:500],
        )

    def _headers(
        self, original: Mapping[str, str], record: ConsumerRecord[Any, Any], reason: str, attempts: int
    ) -> dict[str, str]:
        return encodable(
            dead_letter_headers(
                original,
                reason=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempts=attempts,
                failed_at=self._clock(),
                failed_by=self._failed_by,
            )
        )

    async def _publish(self, value: bytes, key: bytes | None, headers: Mapping[str, str]) -> None:
        await self._broker.publish(value, topic=self.topic, key=key, headers=dict(headers))
