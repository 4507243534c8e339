"""A service started while Kafka is down stays up, answers /readyz 503, and consumes once the broker answers.

Kafka is "down" by pointing the service at a loopback port where nothing listens; it "comes back" when the test
opens a forwarder on that port to the real broker (only the bootstrap goes through it: the broker then advertises
its own address).
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from tests.conftest import Servers
from tests.support.kafka import create_topics, produce, read_topic
from tests.support.mongo import scratch_database
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def forwarder(port: int, target: str) -> AsyncIterator[None]:
    host, target_port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))

    server = await asyncio.start_server(connect, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_ingest_waits_for_kafka_and_then_consumes(servers: Servers, unique: str) -> None:
    settings = IngestSettings(raw_topic=f"raw.{unique}", closed_topic=f"closed.{unique}", group_id=f"ingest-{unique}")
    await create_topics(servers.kafka_bootstrap, settings.raw_topic, settings.closed_topic, settings.dlq_topic)
    form = {"id": "K-1", "title": "Broker away", "status": "resolved", "resolved_at": "2026-11-27T10:00:00Z"}
    await produce(servers.kafka_bootstrap, settings.raw_topic, json.dumps(form).encode(), headers={"source": "generic"})
    port = free_port()
    async with scratch_database(servers.mongodb_uri, f"ingest_{unique}") as db:
        mongo = MongoSettings(uri=servers.mongodb_uri, database=db.name)
        app = create_app(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), settings, mongo)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://ingest") as http,
        ):
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"kafka": False, "mongodb": True})
            async with forwarder(port, servers.kafka_bootstrap):
                await eventually(lambda: http.get("/readyz"), lambda answer: answer.status_code == 200, timeout=60)
                (closed,) = await read_topic(servers.kafka_bootstrap, settings.closed_topic, expect=1, timeout=30)
    assert json.loads(closed.value)["incident_key"] == "generic:K-1"
