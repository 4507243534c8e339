"""Where accepted webhooks go: the ``RawPublisher`` port, its Kafka adapter, and how large the record will be."""

from collections.abc import Mapping
from typing import Protocol

from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker

# The record-batch header (61 bytes) and the most a record's own framing adds (21), as the producer estimates them.
_RECORD_OVERHEAD = 61 + 21
_VARINT = 5  # the most bytes a length takes on the wire
# Headers FastStream adds to every record (``correlation_id``, a uuid; ``content-type``, which ours replaces).
_FRAMEWORK_HEADERS = 256


class RecordTooLargeError(Exception):
    """Kafka will never take this record, however often it is retried: a permanent refusal, not an outage."""


def record_size(body: bytes, headers: Mapping[str, str], key: bytes | None) -> int:
    """An upper bound of the record's size as the producer counts it against its ``max_request_size``."""
    size = _RECORD_OVERHEAD + _FRAMEWORK_HEADERS + _VARINT + len(body) + _VARINT + len(key or b"") + _VARINT
    for name, value in headers.items():
        size += 2 * _VARINT + len(name.encode()) + len(value.encode("utf-8", "surrogatepass"))
    return size


class RawPublisher(Protocol):
    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        """Return only once the record is durably written (Kafka acknowledged it); raise otherwise.

        ``RecordTooLargeError`` when Kafka refuses the record for its size: the receiver answers 413, since retrying
        cannot help. Anything else is taken as transient: the receiver bounds the wait itself
        (``INGEST_WEBHOOK_PUBLISH_TIMEOUT_SECONDS``) and answers 503 on a timeout or an exception, so a tool retries.
        """
        ...


class KafkaRawPublisher:
    """Publishes to the raw topic through the service's broker (``acks="all"``, idempotent), awaiting the ack."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        # Bytes go out unchanged (FastStream encodes nothing); our content-type header replaces FastStream's empty one.
        try:
            await self._broker.publish(body, topic=self._topic, key=key, headers=headers)
        except MessageSizeTooLargeError as exc:  # the producer's max_request_size, or the broker's message.max.bytes
            raise RecordTooLargeError(str(exc)) from exc
