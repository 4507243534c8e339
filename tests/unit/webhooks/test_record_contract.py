"""What the receiver writes is what the consumer's normalisers read: the records go through ``sources.normalise``."""

from schemas import IncidentClosed
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, RawIncident
from services.ingest.sources import normalise
from services.ingest.webhooks import WebhookSettings
from tests.support.fixtures import fixture
from tests.unit.webhooks.harness import NOW, Published, receiver

OPEN = WebhookSettings(allow_unauthenticated=["alertmanager", "cloudevents"])


def incidents(record: Published) -> tuple[IncidentClosed, ...]:
    outcome = normalise(RawIncident(body=record.body, headers=record.headers), NormalisationConfig())
    assert isinstance(outcome, Accepted), outcome
    return outcome.incidents


async def test_alertmanager_uses_received_at_when_endsat_is_the_zero_time() -> None:
    hooks = receiver(OPEN)
    body = fixture("alertmanager", "resolved_zero_endsat.json")
    response = await hooks.post("/webhooks/alertmanager", body, {"content-type": "application/json"})
    assert response.status_code == 202
    (incident,) = incidents(hooks.publisher.records[0])
    assert incident.resolved_at == NOW


async def test_a_binary_mode_cloudevent_over_http_is_read_as_one() -> None:
    hooks = receiver(OPEN)
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "evt-7",
        "ce-source": "%2Fmonitoring%2Fcheckout",
        "ce-type": "com.example.incident.resolved",
    }
    response = await hooks.post("/webhooks/cloudevents", fixture("generic", "resolved.json"), headers)
    assert response.status_code == 202
    (incident,) = incidents(hooks.publisher.records[0])
    assert incident.source == "cloudevents"
    assert incident.labels["ce_source"] == "/monitoring/checkout"
