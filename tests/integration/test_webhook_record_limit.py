"""The webhook size boundary against the real broker: a body at the maximum is written, one byte more is 413.

Bodies up to the old 1 MiB limit overflowed the producer's 1 MiB record limit once headers were added: the tool got a
503 that retrying never fixed. The limits now agree, and a record Kafka refuses for its size is a permanent 413.
"""

import httpx
import pytest
from fastapi import FastAPI

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import WebhookSettings
from tests.conftest import Servers
from tests.support.kafka import read_to_end

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
CLOUDEVENT = {
    "Content-Type": "application/json",
    "ce-specversion": "1.0",
    "ce-id": "evt-8c1f0e2a-3b7d-4e55-9a61-0d2f4b6c8e91",
    "ce-source": "%2Fmonitoring%2Fcheckout",
    "ce-type": "com.example.incident.resolved",
}


def app_with(servers: Servers, settings: IngestSettings, mongo: MongoSettings, webhooks: WebhookSettings) -> FastAPI:
    return create_app(KafkaSettings(bootstrap_servers=servers.kafka_bootstrap), settings, mongo, webhooks)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest", timeout=30)


def json_body(size: int) -> bytes:
    body = b'{"pad": "' + b"x" * (size - 11) + b'"}'
    assert len(body) == size
    return body


async def test_a_body_at_the_maximum_is_written_and_one_byte_more_is_413(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings
) -> None:
    webhooks = WebhookSettings(allow_unauthenticated=["generic", "cloudevents"], publish_timeout_seconds=10)
    app = app_with(servers, ingest_settings, mongo, webhooks)
    largest = json_body(webhooks.max_body_bytes)
    async with app.router.lifespan_context(app), client(app) as http:
        at_limit = await http.post("/webhooks/cloudevents", content=largest, headers=CLOUDEVENT)
        over = await http.post("/webhooks/generic", content=json_body(webhooks.max_body_bytes + 1), headers=JSON)
        # A 202 comes only after Kafka acknowledged the record: what the topic holds now is all there is.
        raw = await read_to_end(servers.kafka_bootstrap, ingest_settings.raw_topic)

    assert at_limit.status_code == 202, at_limit.text
    assert over.status_code == 413
    assert "retry-after" not in over.headers
    assert [record.value for record in raw] == [largest]
    assert raw[0].headers["ce_id"] == CLOUDEVENT["ce-id"]


async def test_a_record_the_producer_refuses_for_its_size_is_413_not_503(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings
) -> None:
    """The last line: a receiver configured beyond the producer's limit still answers permanently."""
    webhooks = WebhookSettings(
        allow_unauthenticated=["generic"], record_limit_bytes=4 * 1024 * 1024, max_body_bytes=2 * 1024 * 1024
    )
    app = app_with(servers, ingest_settings, mongo, webhooks)
    async with app.router.lifespan_context(app), client(app) as http:
        response = await http.post("/webhooks/generic", content=json_body(1024 * 1024), headers=JSON)
    assert response.status_code == 413
    assert "retry-after" not in response.headers
    assert await read_to_end(servers.kafka_bootstrap, ingest_settings.raw_topic) == []
