"""Small real-Kafka helpers for tests: create topics, produce records, read what a topic holds."""

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tests.support.waiting import eventually


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


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list[Record]:
    """Read the topic from the start until ``expect`` records arrived, or the timeout.

    To show that nothing more than the expected records was written (no duplicate), wait until what could write
    them is done (``wait_until_consumed``, an outbox with nothing pending) and then ``read_to_end``.
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
    finally:
        await consumer.stop()
    return records


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise AssertionError(f"topic {topic} cannot be described: {described}")
    return [
        TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The offset the next record of each partition of ``topic`` will get."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def read_to_end(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[Record]:
    """Everything ``topic`` holds now (up to its end offsets when called), by partition, each in offset order.

    Needs no guessed wait: the end offsets say when everything was read. A record written later is not included,
    so call it once what writes the topic is known to be done.
    """
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Record] = []
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end offsets {ends} within {timeout}s")
            records.extend(_records(await consumer.getmany(timeout_ms=200)))
    finally:
        await consumer.stop()
    return sorted(records, key=lambda record: (record.partition, record.offset))


async def unconsumed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, how many records ``group`` has not committed yet (partitions at 0 left out)."""
    ends = await end_offsets(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    committed = {tp.partition: max(meta.offset, 0) for tp, meta in offsets.items() if tp.topic == topic}
    return {number: end - committed.get(number, 0) for number, end in ends.items() if end > committed.get(number, 0)}


async def wait_until_consumed(bootstrap: str, group: str, topic: str, *, timeout: float = 30.0) -> None:
    """Until ``group`` has committed every record ``topic`` holds now.

    Our consumers commit only after a record's effect (published and acknowledged, or written), so from then on
    every effect of those records is observable, duplicates included: a test may assert that nothing more happened.
    """
    await eventually(lambda: unconsumed(bootstrap, group, topic), lambda behind: not behind, timeout=timeout)


def _records(batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]) -> list[Record]:
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
