from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, RawIncident
from services.ingest.sources import normalise
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
BINARY_HEADERS = {
    "ce_specversion": "1.0",
    "ce_id": "evt-77",
    "ce_source": "/ops/statuspage",
    "ce_type": "com.example.incident.resolved",
    "content-type": "application/json",
}


def test_structured_mode_maps_the_generic_data_and_keeps_provenance() -> None:
    raw = RawIncident(fixture("cloudevents", "structured_resolved.json"), {"source": "cloudevents"})
    outcome = normalise(raw, CONFIG)
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "cloudevents:SP-310"
    assert incident.source == "cloudevents"
    assert incident.severity == "critical"
    assert incident.labels == {"ce_source": "/monitoring/statuspage", "ce_type": "com.example.incident.resolved"}
    assert incident.fingerprint == "sso-login-errors"


def test_binary_mode_needs_no_source_header() -> None:
    outcome = normalise(RawIncident(fixture("cloudevents", "binary_data_resolved.json"), BINARY_HEADERS), CONFIG)
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "cloudevents:SP-312"
    assert incident.severity == "medium"
    assert incident.labels["ce_source"] == "/ops/statuspage"


def test_missing_required_attribute_is_invalid() -> None:
    raw = RawIncident(fixture("cloudevents", "structured_missing_type.json"), {"source": "cloudevents"})
    assert normalise(raw, CONFIG) == Invalid("CloudEvent lacks required attributes: type")


def test_other_spec_versions_are_invalid() -> None:
    headers = {**BINARY_HEADERS, "ce_specversion": "0.3"}
    outcome = normalise(RawIncident(fixture("cloudevents", "binary_data_resolved.json"), headers), CONFIG)
    assert outcome == Invalid("specversion '0.3' is not supported (expected 1.0)")


def test_data_that_is_not_a_closure_is_ignored() -> None:
    body = b'{"id": "SP-1", "title": "t", "status": "acknowledged"}'
    assert isinstance(normalise(RawIncident(body, BINARY_HEADERS), CONFIG), Ignored)


def test_binary_mode_with_a_body_that_is_not_json_names_data() -> None:
    outcome = normalise(RawIncident(b"oops", BINARY_HEADERS), CONFIG)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("data: body is not JSON")
