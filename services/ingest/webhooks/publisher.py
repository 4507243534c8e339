"""Where accepted webhooks go: the ``RawPublisher`` port and its Kafka adapter."""

from typing import Protocol

from faststream.kafka import KafkaBroker


class RawPublisher(Protocol):
    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        """Return only once the record is durably written (Kafka acknowledged it); raise otherwise.

        The receiver bounds the wait itself (``INGEST_WEBHOOK_PUBLISH_TIMEOUT_SECONDS``) and answers 503 on a timeout
        or an exception, so a tool retries.
        """
        ...


class KafkaRawPublisher:
    """Publishes to the raw topic through the service's broker (``acks="all"``, idempotent), awaiting the ack."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        # Bytes go out unchanged (FastStream encodes nothing); our content-type header replaces FastStream's empty one.
        await self._broker.publish(body, topic=self._topic, key=key, headers=headers)
