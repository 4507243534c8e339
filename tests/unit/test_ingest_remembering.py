"""Ingest records a batch's published keys while the next batch is parsed, and settles them before that batch looks
up its own: the overlap, the de-duplication it keeps, and what a failed write does (owed on an outage, forgotten with
a log line otherwise, never a dead-lettered record).
"""

import asyncio
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pymongo.errors import AutoReconnect, OperationFailure

from services.ingest.handlers import RawIncidentConsumer
from services.ingest.remembering import BackgroundRecording
from tests.support.fakes import InMemoryRecentClosures, ingest_consumer

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class HeldRecentClosures(InMemoryRecentClosures):
    """Writes only when let through, or fails with the next of ``failures``; logs the order of calls."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures: list[Exception] = []
        self.calls: list[str] = []

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]:
        self.calls.append("look-up")
        return await super().published_since(keys, since)

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        wanted = list(keys)
        self.calls.append("write started")
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        await super().remember(wanted, now)
        self.calls.append("write done")


class AcknowledgingBroker:
    """The broker's producer, acknowledging every incident at once; dead letters kept."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.dead_lettered: list[bytes] = []
        producer = type("Producer", (), {"publish": self._hand_over})()
        self.config = type("Config", (), {"producer": producer})()

    async def publish(self, body: bytes, **_: Any) -> None:
        self.dead_lettered.append(body)

    async def _hand_over(self, command: Any) -> "asyncio.Future[None]":
        self.published.append(json.loads(command.body)["incident_key"])
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


def record(offset: int, incident_id: str) -> ConsumerRecord[Any, Any]:
    form = {"id": incident_id, "title": "Disk full", "status": "resolved", "resolved_at": "2026-11-28T08:00:00Z"}
    body = json.dumps(form).encode()
    return ConsumerRecord("incidents.raw", 0, offset, 0, 0, None, body, None, 0, len(body), [("source", b"generic")])


def ingest(broker: AcknowledgingBroker, recent: InMemoryRecentClosures) -> RawIncidentConsumer:
    return ingest_consumer(broker, recent, NOW)


async def test_a_batch_returns_while_its_keys_are_written_and_the_next_looks_up_only_after_the_write() -> None:
    broker, recent = AcknowledgingBroker(), HeldRecentClosures()
    consumer = ingest(broker, recent)
    recent.gate.clear()

    await consumer.process([record(0, "A"), record(1, "B")])  # returns: its offsets can be committed
    await asyncio.sleep(0.01)
    assert recent.calls == ["look-up", "write started"]
    assert recent.published_at == {}

    second = asyncio.create_task(consumer.process([record(2, "B"), record(3, "C")]))
    await asyncio.sleep(0.01)
    assert not second.done()
    assert recent.calls == ["look-up", "write started"]  # parsed, then waiting: no look-up before the write is in

    recent.gate.set()
    await second
    await consumer.flush()

    assert recent.calls == ["look-up", "write started", "write done", "look-up", "write started", "write done"]
    assert broker.published == ["generic:A", "generic:B", "generic:C"]  # B, published by the batch before: suppressed
    assert set(recent.published_at) == {"generic:A", "generic:B", "generic:C"}


async def test_an_outage_while_writing_rewinds_the_next_batch_and_the_keys_are_written_on_its_next_attempt() -> None:
    broker, recent = AcknowledgingBroker(), HeldRecentClosures()
    consumer = ingest(broker, recent)
    recent.failures = [AutoReconnect("database unreachable")]

    await consumer.process([record(0, "A")])
    with pytest.raises(AutoReconnect):
        await consumer.process([record(1, "A"), record(2, "B")])
    assert broker.published == ["generic:A"]  # the rewound batch published nothing

    await consumer.process([record(1, "A"), record(2, "B")])  # redelivered
    await consumer.flush()

    assert broker.published == ["generic:A", "generic:B"]  # A was still owed, written first, and suppressed
    assert set(recent.published_at) == {"generic:A", "generic:B"}
    assert broker.dead_lettered == []


async def test_a_write_that_fails_for_another_reason_is_logged_and_forgotten_never_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, recent = AcknowledgingBroker(), HeldRecentClosures()
    consumer = ingest(broker, recent)
    recent.failures = [OperationFailure("refused")]

    await consumer.process([record(0, "A"), record(1, "B")])
    with caplog.at_level(logging.ERROR, logger="services.ingest.remembering"):
        await consumer.process([record(2, "C")])
    await consumer.flush()

    assert broker.published == ["generic:A", "generic:B", "generic:C"]
    assert broker.dead_lettered == []
    assert set(recent.published_at) == {"generic:C"}
    assert "could not record 2 published incident keys (OperationFailure: refused)" in caplog.text


async def test_settling_writes_what_is_owed_oldest_first_and_nothing_when_nothing_is() -> None:
    recent = HeldRecentClosures()
    recording = BackgroundRecording(recent)
    await recording.settled()
    recording.record([], NOW)
    assert recent.calls == []

    recent.gate.clear()
    recording.record(["k1"], NOW)
    recording.record(["k2"], NOW + timedelta(seconds=1))  # queued behind the write in progress
    recent.gate.set()
    await recording.settled()

    assert recent.published_at == {"k1": NOW, "k2": NOW + timedelta(seconds=1)}
    assert recent.calls == ["write started", "write done", "write started", "write done"]


async def test_shutdown_during_an_outage_logs_the_keys_left_unrecorded_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, recent = AcknowledgingBroker(), HeldRecentClosures()
    consumer = ingest(broker, recent)
    recent.failures = [AutoReconnect("database unreachable")]

    await consumer.process([record(0, "A"), record(1, "B")])
    with caplog.at_level(logging.WARNING, logger="services.ingest.remembering"):
        await consumer.flush()

    assert recent.published_at == {}
    assert "stopping with 2 published incident keys not recorded (AutoReconnect: database unreachable)" in caplog.text
