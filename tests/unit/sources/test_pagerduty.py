import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import pagerduty
from services.ingest.sources._labels import LABELS_DROPPED, MAX_LABEL_VALUE
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
RESOLVED_AT = datetime(2020, 10, 2, 18, 45, 22, 169000, tzinfo=UTC)
STARTED_AT = datetime(2020, 10, 2, 17, 59, 3, tzinfo=UTC)


def run(name: str, config: NormalisationConfig = CONFIG) -> Outcome:
    return pagerduty.normalise(RawIncident(fixture("pagerduty", name), {"source": "pagerduty"}), config)


def run_payload(payload: Any) -> Outcome:
    return pagerduty.normalise(RawIncident(json.dumps(payload).encode()), CONFIG)


def resolved_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(fixture("pagerduty", "resolved.json"))
    return payload


def accepted(outcome: Outcome) -> Any:
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    return incident


def test_resolved_maps_every_field() -> None:
    incident = accepted(run("resolved.json"))
    assert incident.incident_key == "pagerduty:PGR0VU2"
    assert incident.source == "pagerduty"
    assert incident.source_incident_id == "PGR0VU2"
    assert incident.title == "A little bump in the road"
    assert incident.severity is Severity.CRITICAL
    assert incident.source_severity == "P1"
    assert (incident.service, incident.team) == ("API Service", "Engineering")
    assert incident.started_at == STARTED_AT
    assert incident.resolved_at == RESOLVED_AT
    assert incident.resolved_at.tzinfo is UTC
    assert incident.occurred_at == RESOLVED_AT
    assert incident.url == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert incident.fingerprint == "d3640fbd41094207a1c11e58e46b1662"
    assert incident.labels == {
        "incident_number": "2",
        "priority": "P1",
        "urgency": "high",
        "status": "resolved",
        "service_id": "PF9KMXH",
        "escalation_policy": "Default",
        "teams": "Engineering",
        "resolved_by": "Tenex Engineer",
        "webhook_event_id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
    }
    assert [(entry.kind, entry.at, entry.actor) for entry in incident.timeline] == [
        ("triggered", STARTED_AT, None),
        ("resolved", RESOLVED_AT, "Tenex Engineer"),
    ]
    assert incident.timeline[0].message == "A little bump in the road"


def test_the_same_webhook_always_gets_the_same_event_id() -> None:
    assert accepted(run("resolved.json")).event_id == accepted(run("resolved.json")).event_id


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("triggered.json", "incident.triggered"),
        ("acknowledged.json", "incident.acknowledged"),
        ("annotated.json", "incident.annotated"),
    ],
)
def test_other_event_types_are_ignored(name: str, event_type: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Ignored)
    assert event_type in outcome.reason


def test_incident_merged_into_another_is_ignored() -> None:
    outcome = run("resolved_merged_into_another.json")
    assert isinstance(outcome, Ignored)
    assert "PRORDTY" in outcome.reason


def test_null_priority_falls_back_to_urgency() -> None:
    incident = accepted(run("resolved_null_priority.json"))
    assert incident.severity is Severity.LOW
    assert incident.source_severity == "low"
    assert "priority" not in incident.labels
    assert incident.labels["urgency"] == "low"


def test_unknown_priority_name_falls_back_to_urgency_but_keeps_the_vendor_value() -> None:
    payload = resolved_payload()
    payload["event"]["data"]["priority"]["summary"] = "SEV-A"
    incident = accepted(run_payload(payload))
    assert incident.severity is Severity.HIGH
    assert incident.source_severity == "SEV-A"


def test_operator_override_wins_over_the_built_in_table() -> None:
    config = NormalisationConfig(severity_overrides={"pagerduty": {"P1": Severity.HIGH}})
    assert accepted(run("resolved.json", config)).severity is Severity.HIGH


def test_unicode_title_service_and_team_are_kept() -> None:
    incident = accepted(run("resolved_unicode_title.json"))
    assert incident.title == "Zahlungsdienst: Fehlerrate über 5 % — 決済APIの遅延 🔥"
    assert incident.service == "Zahlungs-API (Straße)"
    assert incident.team == "Équipe Paiements"
    assert json.loads(incident.model_dump_json())["title"] == incident.title


def test_missing_optional_fields() -> None:
    incident = accepted(run("resolved_missing_optional_fields.json"))
    assert incident.incident_key == "pagerduty:PGR0VU3"
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None
    assert (incident.service, incident.team, incident.url, incident.started_at) == ("Database", None, None, None)
    assert incident.fingerprint == "Database|Disk almost full on db-3"
    assert incident.labels == {"service_id": "PF9KMXH", "webhook_event_id": "01BRB6ZP4M6T8ZG4X6BP63ZB9O"}
    assert [(entry.kind, entry.actor) for entry in incident.timeline] == [("resolved", None)]


def test_fingerprint_without_service_is_the_title() -> None:
    payload = resolved_payload()
    del payload["event"]["data"]["incident_key"]
    del payload["event"]["data"]["service"]
    assert accepted(run_payload(payload)).fingerprint == "A little bump in the road"


def test_large_labels_are_bounded() -> None:
    incident = accepted(run("resolved_large_labels.json"))
    assert len(incident.labels) <= 64
    assert LABELS_DROPPED not in incident.labels
    assert len(incident.labels["teams"]) == MAX_LABEL_VALUE
    assert incident.labels["teams"].startswith("Team 000 ")
    assert incident.labels["teams"].endswith("…")
    assert len(incident.labels["escalation_policy"]) == MAX_LABEL_VALUE
    assert incident.team == "Team 000 " + "x" * 40


def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    incident = accepted(run("resolved_offset_timestamps.json"))
    assert incident.resolved_at == RESOLVED_AT
    assert incident.started_at == STARTED_AT
    assert incident.resolved_at.utcoffset() is not None
    assert incident.resolved_at.isoformat() == "2020-10-02T18:45:22.169000+00:00"


def test_timestamp_without_offset_is_invalid() -> None:
    outcome = run("resolved_naive_timestamp.json")
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("event.occurred_at:")


def test_start_after_resolution_is_dropped_not_fatal() -> None:
    payload = resolved_payload()
    payload["event"]["data"]["created_at"] = "2020-10-02T19:00:00Z"
    incident = accepted(run_payload(payload))
    assert incident.started_at is None
    assert [entry.kind for entry in incident.timeline] == ["resolved", "triggered"]


@pytest.mark.parametrize(
    ("name", "field"),
    [("malformed_missing_incident_id.json", "event.data.id:"), ("malformed_data_not_object.json", "event.data:")],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is not JSON"),
        (b'{"event": "\xff"}', "body is not UTF-8"),
        (b"[1, 2]", "expected an object"),
        (b"{}", "event: required"),
        (b'{"event": {"data": {}}}', "event.event_type: required"),
        (b'{"event": {"event_type": "incident.resolved", "data": {"id": "P1"}}}', "event.data.title: required"),
        (
            b'{"event": {"event_type": "incident.resolved", "data": {"id": "P1", "title": "t"}}}',
            "event.occurred_at: required",
        ),
    ],
)
def test_broken_bodies_are_invalid(body: bytes, reason: str) -> None:
    outcome = pagerduty.normalise(RawIncident(body), CONFIG)
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reason


def test_over_long_id_is_invalid_not_cut() -> None:
    payload = resolved_payload()
    payload["event"]["data"]["id"] = "P" * 501
    outcome = run_payload(payload)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("event.data.id:")


def test_lone_surrogates_are_replaced_so_the_event_can_be_serialised() -> None:
    payload = resolved_payload()
    payload["event"]["data"]["title"] = "broken \ud800 text"
    payload["event"]["data"]["id"] = "P\udfff"
    incident = accepted(run_payload(payload))
    assert incident.title == "broken ? text"
    assert incident.incident_key == "pagerduty:P?"
    incident.model_dump_json()
