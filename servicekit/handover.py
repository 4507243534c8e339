"""Handing records to the broker's producer on a hot path, without FastStream's per-message publish middlewares.

``broker.publish`` wraps every message in the broker's middlewares. Ours is FastStream's Prometheus middleware, which
times and counts each publish under its destination: measured on this project's machine, 41 us of CPU per record
against 21 us without it (the Kafka producer's own work is about 16 us). Ingest publishes one record per resolved alert,
thousands a second in an alert storm, and that bookkeeping cost more than half as much as mapping the alert itself.

``hand_over`` gives the record to the same producer the broker publishes with (the in-memory one under
``TestKafkaBroker``), so delivery, serialisation and headers are the broker's own. What it leaves out is the
``faststream_published_*`` series for these records; a caller counts what Kafka acknowledged in its own metrics,
which is the figure that matters (a hand-over is not a delivery).
"""

import asyncio
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.response import KafkaPublishCommand
from faststream.response.publish_type import PublishType


async def hand_over(
    broker: KafkaBroker,
    body: bytes,
    *,
    topic: str,
    key: bytes,
    headers: dict[str, str],
    correlation_id: str,
) -> "asyncio.Future[Any] | None":
    """Give one record to the producer; the acknowledgement to await (``None`` from the in-memory test broker).

    Raises what the producer raises at once (a record too large, a closed producer); a refusal by Kafka comes
    later, through the acknowledgement.
    """
    command = KafkaPublishCommand(
        body,
        topic=topic,
        key=key,
        headers=headers,
        correlation_id=correlation_id,
        no_confirm=True,
        _publish_type=PublishType.PUBLISH,
    )
    sent: asyncio.Future[Any] | None = await broker.config.producer.publish(command)
    return sent
