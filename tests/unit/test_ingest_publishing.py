"""How ingest's consumer settles a batch's publishes: every acknowledgement awaited, refusals dead-lettered, an outage
raised only after all have ended, the refused incidents never remembered as published.

The broker is a fake whose producer answers each publish the ways a real one can: an acknowledgement that succeeds or
fails later, or a refusal at once (a value the producer cannot send). Incidents reach it as commands handed to the
broker's producer (``servicekit.handover``); dead letters through ``broker.publish``.
"""

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faststream.kafka.response import KafkaPublishCommand

from services.ingest.handlers import RawIncidentConsumer
from tests.support.fakes import InMemoryRecentClosures, ingest_consumer

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class AnsweringProducer:
    """Publishes with ``no_confirm``: each returns a future settled later, as aiokafka's does, or raises at once."""

    def __init__(self, answers: dict[str, BaseException | None]) -> None:
        self._answers = answers
        self.acknowledged: list[str] = []
        self.dead_lettered: list[bytes] = []
        self.config = SimpleNamespace(producer=SimpleNamespace(publish=self._hand_over))

    async def publish(self, body: bytes, *, topic: str, **_: Any) -> None:
        assert topic.endswith(".dlq"), "incidents are handed to the producer, not published through the middlewares"
        self.dead_lettered.append(body)

    async def _hand_over(self, command: KafkaPublishCommand) -> Any:
        assert command.no_confirm
        assert command.destination == "incidents.closed"
        incident_key = json.loads(command.body)["incident_key"]
        answer = self._answers.get(incident_key)
        if isinstance(answer, UnicodeEncodeError):
            raise answer
        acknowledgement: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Settled on a later turn of the loop: the consumer must wait for it, not read it on the spot.
        asyncio.get_running_loop().call_later(0.01, self._settle, acknowledgement, incident_key, answer)
        return acknowledgement

    def _settle(self, acknowledgement: "asyncio.Future[None]", incident_key: str, answer: BaseException | None) -> None:
        if answer is None:
            self.acknowledged.append(incident_key)
            acknowledgement.set_result(None)
        else:
            acknowledgement.set_exception(answer)


def record(offset: int, incident_id: str) -> ConsumerRecord[Any, Any]:
    body = json.dumps(
        {"id": incident_id, "title": "Disk full", "status": "resolved", "resolved_at": "2026-11-28T08:00:00Z"}
    ).encode()
    return ConsumerRecord(
        "incidents.raw", 0, offset, 0, 0, incident_id.encode(), body, None, len(body), 0, [("source", b"generic")]
    )


def consumer(producer: AnsweringProducer, recent: InMemoryRecentClosures) -> RawIncidentConsumer:
    return ingest_consumer(producer, recent, NOW)


async def test_refused_publishes_are_dead_lettered_and_not_remembered() -> None:
    producer = AnsweringProducer(
        {
            "generic:too-large": MessageSizeTooLargeError(),
            "generic:unsendable": UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"),
        }
    )
    recent = InMemoryRecentClosures()
    records = [record(0, "fine"), record(1, "too-large"), record(2, "unsendable"), record(3, "also-fine")]

    ingest = consumer(producer, recent)
    await ingest.process(records)
    await ingest.flush()

    assert producer.acknowledged == ["generic:fine", "generic:also-fine"]
    assert producer.dead_lettered == [records[1].value, records[2].value]
    assert await recent.published_since(["generic:fine", "generic:too-large", "generic:unsendable"], NOW) == {
        "generic:fine"
    }


async def test_an_outage_is_raised_after_every_publish_ended_and_nothing_is_remembered() -> None:
    producer = AnsweringProducer({"generic:lost": KafkaConnectionError()})
    recent = InMemoryRecentClosures()

    ingest = consumer(producer, recent)
    with pytest.raises(KafkaConnectionError):
        await ingest.process([record(0, "lost"), record(1, "fine")])
    await ingest.flush()

    assert producer.acknowledged == ["generic:fine"]  # waited for, although the outage came first
    assert producer.dead_lettered == []
    assert await recent.published_since(["generic:fine"], NOW) == set()
