"""Batch consumption with at-least-once delivery that no single record can stall or silently skip.

- Records are parsed by us, not by the framework: FastStream's batch parser decodes every header as UTF-8 and, on a
  header it cannot decode, drops the whole batch without rewinding it (the next commit then skips it). Ours keeps
  such a value with replacement characters, so only a record that is really bad is dead-lettered.
- The batch's offsets are committed after the handler returns. An outage (Kafka or MongoDB unreachable) rewinds the
  batch after a pause, without limit: parking every record in the DLQ during an outage would only move the problem.
- Any other failure that escapes the handler is the record's own problem: the batch is handled again one record at
  a time (effects are idempotent, so what was done is not done twice in effect), and a record that still fails goes
  to the DLQ with the reason. The partition always moves on.
"""

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.headers import decodable_value, decodes
from servicekit.service_settings import ATTEMPT_ALLOWANCE_SECONDS, ServiceSettings

log = logging.getLogger(__name__)

Records = Sequence[ConsumerRecord[Any, Any]]

# Kafka's own default: a consumer that does not come back for more records within this long leaves the group.
KAFKA_MAX_POLL_INTERVAL_MS = 300_000


class RecordBatchHandler(Protocol):
    async def process(self, records: Records) -> None:
        """Take effect for every record, or dead-letter it; raise only for an outage (the batch is redelivered)."""
        ...


def max_poll_interval_ms(
    batch_max_records: int,
    max_attempts: int,
    backoff_seconds: float,
    attempt_seconds: float = ATTEMPT_ALLOWANCE_SECONDS,
) -> int:
    """Long enough for a batch whose every record fails all its attempts (each taking up to ``attempt_seconds``, on
    top of the pauses between them), never shorter than Kafka's default.

    A batch that outlasts the poll interval makes the consumer leave its group: its commit would fail and the same
    batch would be handed out again and again. A dead consumer is still noticed by its heartbeats, not by this.
    """
    pauses = backoff_seconds * max_attempts * (max_attempts - 1) / 2
    worst_record = pauses + max_attempts * attempt_seconds
    return max(KAFKA_MAX_POLL_INTERVAL_MS, math.ceil(batch_max_records * worst_record * 1000))


def max_poll_interval_for(settings: ServiceSettings) -> int:
    """``max_poll_interval_ms`` for a service's batch size, retries and attempt allowance."""
    return max_poll_interval_ms(
        settings.batch_max_records,
        settings.max_attempts,
        settings.retry_backoff_seconds,
        settings.attempt_allowance_seconds,
    )


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """Bodies are validated by our own models, so a malformed one reaches the DLQ instead of failing the framework."""
    return message.body


async def tolerant_batch_parser(
    records: tuple[ConsumerRecord[Any, Any], ...],
    original: Callable[[tuple[ConsumerRecord[Any, Any], ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """FastStream's parser, given header values it can decode; the handler still gets the records as they came."""
    # Copying every record cost more than the rest of parsing a batch: only a record whose headers need it is copied.
    decodable = tuple(
        record
        if all(decodes(value) for _, value in record.headers)
        else dataclasses.replace(record, headers=[(name, decodable_value(value)) for name, value in record.headers])
        for record in records
    )
    message = await original(decodable)
    message.raw_message = records
    return message


def records_of(message: KafkaMessage) -> Records:
    raw = message.raw_message
    return raw if isinstance(raw, (tuple, list)) else (raw,)


class GuardedBatches:
    """Runs a handler on each batch so that a failing record is dead-lettered instead of rewinding the batch."""

    def __init__(self, handler: RecordBatchHandler, dead_letters: DeadLetters, *, outage_pause_seconds: float) -> None:
        self._handler = handler
        self._dead_letters = dead_letters
        self._outage_pause_seconds = outage_pause_seconds

    async def process(self, records: Records) -> None:
        try:
            async with self._dead_letters.held_until_done():
                await self._handler.process(records)
        except Exception as exc:
            await self._pause_if_outage(exc)
            log.warning("a batch of %d records failed (%s); handling them one at a time", len(records), describe(exc))
            for record in records:
                await self._one(record)

    async def _one(self, record: ConsumerRecord[Any, Any]) -> None:
        try:
            async with self._dead_letters.held_until_done():
                await self._handler.process((record,))
        except Exception as exc:
            await self._pause_if_outage(exc)
            log.exception("record %s[%d]@%d failed on its own", record.topic, record.partition, record.offset)
            await self._dead_letters.send(record, f"processing failed: {describe(exc)}")

    async def _pause_if_outage(self, exc: Exception) -> None:
        """Re-raise an outage after a pause (the batch is rewound and redelivered); return for anything else."""
        if is_outage(exc):
            log.warning("outage (%s); the batch will be redelivered", describe(exc))
            await asyncio.sleep(self._outage_pause_seconds)
            raise exc


# What a held fetch waits for before ``batch_wait_ms`` runs out: more than a batch of ordinary records ever weighs, so
# under a trickle the wait decides, and under load the batch size does (a full fetch returns at once).
BATCH_FILL_BYTES = 1024 * 1024


def subscribe_batches(
    broker: KafkaBroker,
    handler: RecordBatchHandler,
    dead_letters: DeadLetters,
    *,
    topic: str,
    group_id: str,
    settings: ServiceSettings,
) -> GuardedBatches:
    """Subscribe ``handler`` to ``topic`` in batches, committing each batch after the handler's effects."""
    guarded = GuardedBatches(handler, dead_letters, outage_pause_seconds=max(settings.retry_backoff_seconds, 0.5))

    async def on_batch(message: KafkaMessage) -> None:
        await guarded.process(records_of(message))

    broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        max_poll_interval_ms=max_poll_interval_for(settings),
        fetch_min_bytes=BATCH_FILL_BYTES if settings.batch_wait_ms else 1,
        fetch_max_wait_ms=settings.batch_wait_ms,
        parser=tolerant_batch_parser,
        decoder=undecoded,
    )(on_batch)
    return guarded
