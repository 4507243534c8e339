"""Small real-Kafka helpers for tests: create topics, produce records, read what a topic holds."""

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int


async def create_topics(bootstrap: str, *topics: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for topic in topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, value: bytes, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value, key=key, headers=[(k, v.encode()) for k, v in (headers or {}).items()]
        )
    finally:
        await producer.stop()


async def produce_many(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None, Mapping[str, str]]]
) -> None:
    """Produce (value, key, headers) records in order with one producer, waiting for all acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
            for value, key, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0, settle: float = 0.0
) -> list[Record]:
    """Read the topic from the start until ``expect`` records arrived (or the timeout), then ``settle`` seconds more.

    ``settle`` lets a test show that no extra record (a duplicate) follows the expected ones.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Record] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(_records(batch))
        if settle:
            await asyncio.sleep(settle)
            records.extend(_records(await consumer.getmany(timeout_ms=500)))
    finally:
        await consumer.stop()
    return records


def _records(batch: dict) -> list[Record]:  # type: ignore[type-arg]
    return [
        Record(
            key=message.key,
            value=message.value,
            headers={name: value.decode() for name, value in message.headers},
            partition=message.partition,
            offset=message.offset,
        )
        for messages in batch.values()
        for message in messages
    ]


async def committed_offsets(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offsets on ``topic``, summed over its partitions (0 where nothing is committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(
        max(meta.offset, 0) for tp, meta in offsets.items() if isinstance(tp, TopicPartition) and tp.topic == topic
    )


async def produce_raw(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]
) -> None:
    """Produce (value, key, headers) records in order, headers as raw bytes (a producer need not send UTF-8)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for value, key, headers in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
