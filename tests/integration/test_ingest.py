"""Ingest against real Kafka and the MongoDB-compatible server: restarts and de-duplication across deliveries.

Routing (normalised events out, bad records to the DLQ, the partition moving on) is the consumer suite
``tests/unit/test_ingest_component.py``, which runs in memory and on the real Kafka.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.ingest.app import create_app
from services.ingest.recent_closures import RECENT_CLOSURES, RecentClosures
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from tests.conftest import Servers
from tests.support.kafka import produce, read_to_end, read_topic, wait_until_consumed
from tests.support.mongo import scratch_database

pytestmark = pytest.mark.integration


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


async def test_records_survive_a_restart_without_loss_or_reprocessing(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings
) -> None:
    kafka = KafkaSettings(bootstrap_servers=servers.kafka_bootstrap)
    await produce(servers.kafka_bootstrap, ingest_settings.raw_topic, generic("A-1"), headers={"source": "generic"})
    first = create_app(kafka, ingest_settings, mongo)
    async with first.router.lifespan_context(first):
        await read_topic(servers.kafka_bootstrap, ingest_settings.closed_topic, expect=1)
    # Its key, written in the background while ingest waited for more, is recorded by the time it has shut down.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri.get_secret_value())
    try:
        assert [doc["_id"] async for doc in client[mongo.database][RECENT_CLOSURES].find({})] == ["generic:A-1"]
    finally:
        await client.close()

    # Produced while ingest is down: picked up by the next instance, and A-1 (committed) is not processed again.
    await produce(servers.kafka_bootstrap, ingest_settings.raw_topic, generic("A-2"), headers={"source": "generic"})
    second = create_app(kafka, ingest_settings, mongo)
    async with second.router.lifespan_context(second):
        await wait_until_consumed(servers.kafka_bootstrap, ingest_settings.group_id, ingest_settings.raw_topic)
        closed = await read_to_end(servers.kafka_bootstrap, ingest_settings.closed_topic)

    assert sorted(r.key or b"" for r in closed) == [b"generic:A-1", b"generic:A-2"]


@pytest.mark.parametrize("batch", [100, 1], ids=["one batch", "a batch each"])
async def test_the_same_closure_from_two_deliveries_is_published_once(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings, batch: int
) -> None:
    # Two webhooks (same raw key here, so one partition and in order) carrying the same resolved incident. A batch
    # each: the second looks up while the first's key may still be being written, and must wait for it.
    for _ in range(2):
        await produce(
            servers.kafka_bootstrap,
            ingest_settings.raw_topic,
            generic("D-1"),
            key=b"delivery",
            headers={"source": "generic"},
        )
    await produce(servers.kafka_bootstrap, ingest_settings.raw_topic, generic("D-2"), headers={"source": "generic"})
    settings = ingest_settings.model_copy(update={"batch_max_records": batch})
    app = create_app(KafkaSettings(bootstrap_servers=servers.kafka_bootstrap), settings, mongo)
    async with app.router.lifespan_context(app):
        await wait_until_consumed(servers.kafka_bootstrap, settings.group_id, settings.raw_topic)
        closed = await read_to_end(servers.kafka_bootstrap, settings.closed_topic)
        sample = app.state.metrics.registry.get_sample_value
        duplicates = sample("lessons_incident_closures_suppressed_total", {"source": "generic"})
    assert sorted(r.key or b"" for r in closed) == [b"generic:D-1", b"generic:D-2"]
    assert duplicates == 1


async def test_recent_closures_forget_a_key_once_the_window_has_passed(mongo: MongoSettings) -> None:
    async with scratch_database(mongo.uri.get_secret_value(), mongo.database) as db:
        recent = RecentClosures(db, window=timedelta(hours=1))
        await recent.ensure_indexes()
        t0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        await recent.remember(["generic:W-1", "generic:W-1", "generic:W-2"], t0)
        within = t0 + timedelta(minutes=59)
        after = t0 + timedelta(minutes=61)
        assert await recent.published_since(["generic:W-1", "generic:W-3"], within - recent.window) == {"generic:W-1"}
        assert await recent.published_since(["generic:W-1", "generic:W-2"], after - recent.window) == set()
        await recent.remember(["generic:W-1"], after)
        assert await recent.published_since(["generic:W-1"], after - recent.window) == {"generic:W-1"}


async def test_remembering_keys_already_recorded_moves_their_window_and_records_the_new_ones(
    mongo: MongoSettings,
) -> None:
    async with scratch_database(mongo.uri.get_secret_value(), mongo.database) as db:
        recent = RecentClosures(db, window=timedelta(hours=1))
        await recent.ensure_indexes()
        t0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        await recent.remember(["generic:M-1", "generic:M-2"], t0)
        later = t0 + timedelta(minutes=90)
        await recent.remember(["generic:M-3", "generic:M-1", "generic:M-4", "generic:M-3"], later)
        stored = {doc["_id"]: doc async for doc in db[RECENT_CLOSURES].find({})}
        assert sorted(stored) == ["generic:M-1", "generic:M-2", "generic:M-3", "generic:M-4"]
        assert {key: doc["published_at"].replace(tzinfo=UTC) for key, doc in stored.items()} == {
            "generic:M-1": later,
            "generic:M-2": t0,
            "generic:M-3": later,
            "generic:M-4": later,
        }
        assert stored["generic:M-1"]["expire_at"].replace(tzinfo=UTC) == later + recent.window
        assert await recent.published_since(["generic:M-1", "generic:M-2"], later - recent.window) == {"generic:M-1"}
