"""One consumer test, two brokers: FastStream's in-memory ``TestKafkaBroker`` and the real Kafka.

As in FastStream's own tests (one test case, a memory and a real configuration of the broker), a test takes the
``kafka`` fixture, which is parametrized: ``memory`` runs the handlers inside each publish (a unit test: no network),
``real`` starts the same broker on the real Kafka (marked ``integration``) and waits, with a deadline, until the
consumer group committed what was produced. Either way the test then reads what reached the output topics.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from servicekit.batches import undecoded
from servicekit.kafka_settings import KafkaSettings
from tests.support.kafka import Record, create_topics, produce_many, read_to_end, wait_until_consumed

Mode = Literal["memory", "real"]
# What a test produces: value, key, headers.
Produced = tuple[bytes, bytes | None, Mapping[str, str]]


class RunningKafka(Protocol):
    @property
    def mode(self) -> Mode:
        """Which broker: ``memory`` or ``real``."""

    async def produce(self, topic: str, records: Sequence[Produced], *, one_batch: bool = False) -> None:
        """Produce in order; ``one_batch`` hands them to the consumer together in memory (no keys or headers)."""

    async def handled(self) -> None:
        """Return once the consumer has handled (and committed) everything produced so far."""

    async def records(self, topic: str) -> list[Record]:
        """What ``topic`` holds, by partition and in offset order."""


@dataclass(frozen=True)
class ConsumerKafka:
    """The ``kafka`` fixture: which broker this run of the test uses, and how to reach it."""

    mode: Mode
    bootstrap: str = "127.0.0.1:9092"  # never dialled in memory

    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap)

    @asynccontextmanager
    async def running(
        self, broker: KafkaBroker, *, consumes: str, group: str, outputs: Sequence[str]
    ) -> AsyncIterator[RunningKafka]:
        """``broker`` (its subscribers already wired) running on this run's Kafka, the ``outputs`` observed."""
        if self.mode == "memory":
            memory = _InMemory(outputs)
            for topic in outputs:
                broker.subscriber(topic, decoder=undecoded)(memory.catcher(topic))
            async with TestKafkaBroker(broker) as test_broker:
                memory.broker = test_broker
                yield memory
        else:
            await create_topics(self.bootstrap, consumes, *outputs)
            await broker.start()
            try:
                yield _Real(self.bootstrap, consumes, group)
            finally:
                await broker.stop()


@dataclass
class _InMemory:
    outputs: Sequence[str]
    mode: Mode = "memory"
    broker: KafkaBroker | None = None
    caught: dict[str, list[Record]] = field(default_factory=dict)

    def catcher(self, topic: str) -> Callable[[KafkaMessage], Awaitable[None]]:
        self.caught[topic] = []

        async def catch(message: KafkaMessage) -> None:
            caught = self.caught[topic]
            key = getattr(message.raw_message, "key", None)
            caught.append(Record(key, message.body, dict(message.headers), partition=0, offset=len(caught)))

        return catch

    async def produce(self, topic: str, records: Sequence[Produced], *, one_batch: bool = False) -> None:
        assert self.broker is not None
        if one_batch:
            assert all(key is None and not headers for _, key, headers in records), "a batch is values only"
            await self.broker.publish_batch(*(value for value, _, _ in records), topic=topic)
            return
        for value, key, headers in records:
            await self.broker.publish(value, topic, key=key, headers=dict(headers))

    async def handled(self) -> None:
        """Nothing to wait for: the in-memory broker runs the handler inside ``publish``."""

    async def records(self, topic: str) -> list[Record]:
        return list(self.caught[topic])


@dataclass(frozen=True)
class _Real:
    bootstrap: str
    consumes: str
    group: str
    mode: Mode = "real"

    async def produce(self, topic: str, records: Sequence[Produced], *, one_batch: bool = False) -> None:
        # One producer, in order; how Kafka batches them for the consumer is up to Kafka.
        await produce_many(self.bootstrap, topic, list(records))

    async def handled(self) -> None:
        await wait_until_consumed(self.bootstrap, self.group, self.consumes)

    async def records(self, topic: str) -> list[Record]:
        return await read_to_end(self.bootstrap, topic)
