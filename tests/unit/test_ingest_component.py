"""Ingest's consumer wired as in production, run in memory and on the real Kafka (the ``kafka`` fixture).

The de-duplication store is a fake here; the MongoDB one is tested against the real server in
``tests/integration/test_ingest.py``.
"""

import json

from schemas import IncidentClosed, Severity
from services.ingest.app import create_broker
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from tests.support.brokers import ConsumerKafka
from tests.support.fakes import InMemoryRecentClosures
from tests.support.fixtures import fixture

GENERIC = {"source": "generic"}


def generic(incident_id: str, **overrides: object) -> bytes:
    form = {
        "id": incident_id,
        "title": "Checkout latency above SLO",
        "status": "resolved",
        "severity": "SEV2",
        "service": "checkout",
        "team": "payments",
        "started_at": "2026-11-27T09:00:00Z",
        "resolved_at": "2026-11-27T10:30:00+01:00",
        **overrides,
    }
    return json.dumps(form).encode()


def ingest_settings(unique: str) -> IngestSettings:
    return IngestSettings(
        raw_topic=f"incidents.raw.{unique}", closed_topic=f"incidents.closed.{unique}", group_id=f"ingest-{unique}"
    )


async def test_each_outcome_is_routed_and_counted(kafka: ConsumerKafka, unique: str) -> None:
    settings, metrics = ingest_settings(unique), IngestMetrics.create()
    broker, _ = create_broker(kafka.settings(), settings, metrics, InMemoryRecentClosures())
    outputs = [settings.closed_topic, settings.dlq_topic]
    async with kafka.running(broker, consumes=settings.raw_topic, group=settings.group_id, outputs=outputs) as running:
        resolved = (fixture("generic", "resolved.json"), None, GENERIC)
        await running.produce(
            settings.raw_topic,
            [
                resolved,
                resolved,  # a vendor retry: published once
                (fixture("generic", "triggered.json"), None, GENERIC),
                (b"{oops", b"k1", GENERIC),
                (b"{}", b"k1", {"source": "nagios"}),
            ],
        )
        await running.handled()
        closed = await running.records(settings.closed_topic)
        dead = await running.records(settings.dlq_topic)

    assert len(closed) == 1
    body, headers = closed[0].value, closed[0].headers
    assert json.loads(body)["incident_key"] == "generic:INC-2041"
    assert headers["event-id"] == headers["correlation_id"] == json.loads(body)["event_id"]
    assert headers["content-type"] == "application/json"
    assert [record.value for record in dead] == [b"{oops", b"{}"]  # one key, one partition: in order
    assert dead[1].headers["dlq-reason"].startswith("unknown source 'nagios'")
    sample = metrics.registry.get_sample_value
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "accepted"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "duplicate"}) == 1
    assert sample("lessons_incident_closures_suppressed_total", {"source": "generic"}) == 1
    assert sample("lessons_incidents_closed_published_total", {"source": "generic"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "ignored"}) == 1
    assert sample("lessons_incident_events_received_total", {"source": "generic", "outcome": "invalid"}) == 1
    # An unknown source name never becomes a label value: it could be anything a sender typed.
    assert sample("lessons_incident_events_received_total", {"source": "unknown", "outcome": "invalid"}) == 1
    assert sample("lessons_dlq_messages_total", {"topic": settings.dlq_topic}) == 2


async def test_bad_record_goes_to_dlq_and_the_next_good_one_is_published(kafka: ConsumerKafka, unique: str) -> None:
    settings, metrics = ingest_settings(unique), IngestMetrics.create()
    broker, _ = create_broker(kafka.settings(), settings, metrics, InMemoryRecentClosures())
    outputs = [settings.closed_topic, settings.dlq_topic]
    async with kafka.running(broker, consumes=settings.raw_topic, group=settings.group_id, outputs=outputs) as running:
        # Same key, so all three share a partition: the good record after the garbage proves the partition moved on.
        await running.produce(
            settings.raw_topic,
            [
                (b"\x00 not json", b"INC-7", GENERIC),
                (generic("INC-7", status="triggered"), b"INC-7", GENERIC),
                (generic("INC-7"), b"INC-7", GENERIC),
            ],
        )
        await running.handled()
        closed = await running.records(settings.closed_topic)
        dead = await running.records(settings.dlq_topic)

    assert len(closed) == 1
    incident = IncidentClosed.model_validate_json(closed[0].value)
    assert closed[0].key == b"generic:INC-7"
    assert incident.incident_key == "generic:INC-7"
    assert incident.severity is Severity.HIGH
    assert incident.resolved_at.isoformat() == "2026-11-27T09:30:00+00:00"
    assert closed[0].headers["event-id"] == str(incident.event_id)

    assert len(dead) == 1
    assert dead[0].value == b"\x00 not json"
    assert dead[0].key == b"INC-7"
    assert dead[0].headers["dlq-reason"].startswith("body is not JSON")
    assert dead[0].headers["dlq-original-topic"] == settings.raw_topic
    assert dead[0].headers["source"] == "generic"
