"""Ingest's subscriber wired as in production, on FastStream's in-memory broker: fast checks of the routing."""

import json

from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from servicekit.batches import undecoded
from services.ingest.app import create_broker
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings, KafkaSettings
from tests.support.fakes import InMemoryRecentClosures
from tests.support.fixtures import fixture


async def test_each_outcome_is_routed_and_counted() -> None:
    settings, metrics = IngestSettings(), IngestMetrics.create()
    broker = create_broker(KafkaSettings(), settings, metrics, InMemoryRecentClosures())
    closed: list[tuple[bytes, dict[str, str]]] = []
    dead: list[tuple[bytes, dict[str, str]]] = []

    @broker.subscriber(settings.closed_topic, decoder=undecoded)
    async def on_closed(message: KafkaMessage) -> None:
        closed.append((message.body, message.headers))

    @broker.subscriber(settings.dlq_topic, decoder=undecoded)
    async def on_dead(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers))

    async with TestKafkaBroker(broker) as test_broker:
        for _ in range(2):  # a vendor retry: published once
            await test_broker.publish(
                fixture("generic", "resolved.json"), settings.raw_topic, headers={"source": "generic"}
            )
        await test_broker.publish(
            fixture("generic", "triggered.json"), settings.raw_topic, headers={"source": "generic"}
        )
        await test_broker.publish(b"{oops", settings.raw_topic, headers={"source": "generic"}, key=b"k1")
        await test_broker.publish(b"{}", settings.raw_topic, headers={"source": "nagios"})

    assert len(closed) == 1
    body, headers = closed[0]
    assert json.loads(body)["incident_key"] == "generic:INC-2041"
    assert headers["event-id"] == json.loads(body)["event_id"]
    assert [d[0] for d in dead] == [b"{oops", b"{}"]
    assert dead[1][1]["dlq-reason"].startswith("unknown source 'nagios'")
    registry = metrics.registry
    sample = registry.get_sample_value
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "accepted"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "duplicate"}) == 1
    assert sample("lessons_incident_closures_suppressed_total", {"source": "generic"}) == 1
    assert sample("lessons_incidents_closed_published_total", {"source": "generic"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "ignored"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "invalid"}) == 1
    # An unknown source name never becomes a label value: it could be anything a sender typed.
    assert sample("lessons_incident_events_received_total", {"source": "unknown", "outcome": "invalid"}) == 1
    assert sample("lessons_dlq_messages_total", {"topic": "incidents.raw.dlq"}) == 2
