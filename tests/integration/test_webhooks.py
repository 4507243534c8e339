"""Webhooks through the real ingest app: signed HTTP in, the raw record on Kafka, ``IncidentClosed`` out.

The router is mounted here the way ``services/ingest/app.py`` is meant to mount it (the app's own broker and metrics
registry), so this test keeps proving the wiring once the app does it itself.
"""

import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from schemas import IncidentClosed
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import WebhookSettings
from tests.conftest import Servers
from tests.support.fixtures import fixture
from tests.support.kafka import read_to_end, wait_until_consumed
from tests.unit.webhooks.signing import new_svix_secret, pagerduty_signature, svix_headers

pytestmark = pytest.mark.integration

PD_SECRET = "pd-integration-secret"
INCIDENTIO_SECRET = new_svix_secret()


def ingest_with_webhooks(servers: Servers, settings: IngestSettings, mongo: MongoSettings) -> FastAPI:
    webhooks = WebhookSettings(
        pagerduty_secrets=[PD_SECRET],
        incidentio_secrets=[INCIDENTIO_SECRET],
        publish_timeout_seconds=5,
    )
    return create_app(KafkaSettings(bootstrap_servers=servers.kafka_bootstrap), settings, mongo, webhooks)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


async def test_signed_webhooks_become_incident_closed_events(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings
) -> None:
    pagerduty = fixture("pagerduty", "resolved.json")
    incidentio = fixture("incidentio", "incident_updated_closed.json")
    app = ingest_with_webhooks(servers, ingest_settings, mongo)
    before = datetime.now(UTC)

    async with app.router.lifespan_context(app), client(app) as http:
        pd_response = await http.post(
            "/webhooks/pagerduty",
            content=pagerduty,
            headers={
                "Content-Type": "application/json",
                "X-PagerDuty-Signature": pagerduty_signature(pagerduty, "pd-rotated-out", PD_SECRET),
                "X-Webhook-Id": "8a1d6b3c-pd-delivery",
            },
        )
        signed = svix_headers(incidentio, INCIDENTIO_SECRET, message_id="msg_2Kx7", timestamp=str(int(time.time())))
        io_response = await http.post(
            "/webhooks/incidentio", content=incidentio, headers={"Content-Type": "application/json", **signed}
        )
        forged = await http.post(
            "/webhooks/pagerduty",
            content=pagerduty,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": "v1=" + "0" * 64},
        )
        # Accepted deliveries were acknowledged by Kafka before the answer: the raw topic is complete now.
        raw = await read_to_end(servers.kafka_bootstrap, ingest_settings.raw_topic)
        await wait_until_consumed(servers.kafka_bootstrap, ingest_settings.group_id, ingest_settings.raw_topic)
        closed = await read_to_end(servers.kafka_bootstrap, ingest_settings.closed_topic)
        exposition = (await http.get("/metrics")).text

    assert (pd_response.status_code, io_response.status_code, forged.status_code) == (202, 202, 403)

    by_source = {record.headers["source"]: record for record in raw}
    assert len(raw) == 2  # the forged delivery never reached Kafka
    assert by_source["pagerduty"].value == pagerduty
    assert by_source["pagerduty"].headers["delivery-id"] == "8a1d6b3c-pd-delivery"
    assert by_source["pagerduty"].headers["content-type"] == "application/json"
    assert by_source["incidentio"].value == incidentio
    assert by_source["incidentio"].headers["delivery-id"] == "msg_2Kx7"
    for record in raw:
        received_at = datetime.fromisoformat(record.headers["received-at"])
        assert received_at.utcoffset() is not None
        assert before <= received_at <= datetime.now(UTC)

    incidents = sorted(IncidentClosed.model_validate_json(record.value).incident_key for record in closed)
    assert incidents == ["incidentio:01FDAG4SAP5TYPT98WGR2N7W91", "pagerduty:PGR0VU2"]
    assert 'lessons_webhook_requests_total{source="pagerduty",status="202"} 1.0' in exposition
    assert 'lessons_webhook_requests_total{source="pagerduty",status="403"} 1.0' in exposition
    assert 'lessons_webhook_requests_total{source="incidentio",status="202"} 1.0' in exposition


async def test_without_a_connected_broker_the_tool_is_told_to_retry(
    servers: Servers, ingest_settings: IngestSettings, mongo: MongoSettings
) -> None:
    """The real adapter's failure path: the broker is not started (as when Kafka was lost), so 503 + Retry-After."""
    app = ingest_with_webhooks(servers, ingest_settings, mongo)
    body = fixture("pagerduty", "resolved.json")
    async with client(app) as http:
        response = await http.post(
            "/webhooks/pagerduty",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": pagerduty_signature(body, PD_SECRET)},
        )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert await read_to_end(servers.kafka_bootstrap, ingest_settings.raw_topic) == []
