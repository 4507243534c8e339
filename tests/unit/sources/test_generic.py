from datetime import UTC, datetime

import pytest

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, RawIncident
from services.ingest.sources import generic, normalise
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()


def run(name: str) -> Accepted | Ignored | Invalid:
    return generic.normalise(RawIncident(fixture("generic", name), {"source": "generic"}), CONFIG)


def test_resolved_maps_every_field() -> None:
    outcome = run("resolved.json")
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "generic:INC-2041"
    assert incident.title == "Checkout p99 latency above 2 s"
    assert incident.severity is Severity.HIGH
    assert incident.source_severity == "SEV2"
    assert (incident.service, incident.team) == ("checkout", "payments")
    assert incident.started_at == datetime(2026, 11, 27, 9, 12, tzinfo=UTC)
    assert incident.resolved_at == datetime(2026, 11, 27, 10, 40, tzinfo=UTC)
    assert incident.resolved_at.tzinfo is UTC
    assert incident.occurred_at == incident.resolved_at
    assert incident.url == "https://status.example.com/incidents/INC-2041"
    assert incident.labels == {"env": "prod", "region": "eu-west-1", "customer_facing": "true", "replicas": "3"}
    assert incident.fingerprint == "checkout-latency-p99"
    assert [entry.kind for entry in incident.timeline] == ["triggered", "acknowledged", "resolved"]
    assert incident.timeline[1].actor == "Dana"


def test_the_same_closure_always_gets_the_same_event_id() -> None:
    first, second = run("resolved.json"), run("resolved.json")
    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert first.incidents[0].event_id == second.incidents[0].event_id


def test_minimal_form_with_numeric_id_and_upper_case_status() -> None:
    outcome = run("resolved_minimal.json")
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "generic:981"
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None
    assert incident.resolved_at == datetime(2026, 11, 27, 4, 59, 59, 500000, tzinfo=UTC)
    assert incident.labels == {}
    assert incident.timeline == ()


def test_unicode_survives() -> None:
    outcome = run("resolved_unicode.json")
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "generic:INC-ü-7"
    assert incident.title == "Zahlungen fehlgeschlagen — 支付失败 🚨"
    assert incident.labels == {"équipe": "paiements"}
    assert incident.resolved_at == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def test_triggered_is_ignored_with_the_status() -> None:
    outcome = run("triggered.json")
    assert outcome == Ignored("status 'triggered' is not resolved or closed")


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("missing_resolved_at.json", "resolved_at"),
        ("naive_timestamp.json", "resolved_at"),
        ("resolved_before_start.json", "started_at is after resolved_at"),
    ],
)
def test_broken_forms_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert field in outcome.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is not JSON"),
        (b'{"id": "\xc3\x28"}', "body is not UTF-8 text"),
        (b"[1, 2]", "body is a JSON list, expected an object"),
        (b'{"title": "x", "status": "resolved"}', "id: Field required"),
    ],
)
def test_unreadable_bodies_are_invalid(body: bytes, reason: str) -> None:
    outcome = generic.normalise(RawIncident(body, {}), CONFIG)
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reason


def test_severity_overrides_come_before_the_built_in_vocabulary() -> None:
    config = NormalisationConfig(severity_overrides={"generic": {"SEV2": Severity.CRITICAL}})
    outcome = generic.normalise(RawIncident(fixture("generic", "resolved.json")), config)
    assert isinstance(outcome, Accepted)
    assert outcome.incidents[0].severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no source header"),
        ({"source": "nagios"}, "unknown source 'nagios'"),
    ],
)
def test_records_without_a_known_source_are_invalid(headers: dict[str, str], reason: str) -> None:
    outcome = normalise(RawIncident(fixture("generic", "resolved.json"), headers), CONFIG)
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reason
