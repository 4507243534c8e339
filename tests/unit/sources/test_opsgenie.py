import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import opsgenie
from services.ingest.sources._labels import LABELS_DROPPED, MAX_LABEL_VALUE, MAX_LABELS
from services.ingest.sources._times import epoch_instant
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
# Opsgenie documents updatedAt in nanoseconds and createdAt in milliseconds.
CLOSED_AT = datetime(2015, 1, 5, 10, 3, 44, 764002, tzinfo=UTC)
CREATED_AT = datetime(2015, 1, 5, 10, 3, 11, 104000, tzinfo=UTC)


def run(name: str, config: NormalisationConfig = CONFIG) -> Outcome:
    return opsgenie.normalise(RawIncident(fixture("opsgenie", name), {"source": "opsgenie"}), config)


def run_payload(payload: Any) -> Outcome:
    return opsgenie.normalise(RawIncident(json.dumps(payload).encode()), CONFIG)


def close_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(fixture("opsgenie", "close.json"))
    return payload


def accepted(outcome: Outcome) -> Any:
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    return incident


def test_close_maps_every_field() -> None:
    incident = accepted(run("close.json"))
    assert incident.incident_key == "opsgenie:052652ac-5d1c-464a-812a-7dd18bbfba8c"
    assert incident.title == "test alert"
    assert incident.severity is Severity.CRITICAL
    assert incident.source_severity == "P1"
    assert (incident.service, incident.team) == ("checkout", "payments")
    assert incident.started_at == CREATED_AT
    assert incident.resolved_at == CLOSED_AT
    assert incident.resolved_at.tzinfo is UTC
    assert incident.url is None
    assert incident.fingerprint == "aliastest"
    assert incident.labels == {
        "tiny_id": "23",
        "priority": "P1",
        "entity": "checkout-db-1",
        "alert_source": "fili@ifountain.com",
        "integration": "Integration1",
        "team_ids": "a6b8c0d2-6f1e-4b2a-9c3d-0e1f2a3b4c5d",
        "closed_by": "fili@ifountain.com",
        "tags": "tag1",
        "env": "prod",
        "runbook": "https://runbooks.example.com/checkout-db",
        "service": "checkout",
        "team": "payments",
    }
    assert [(entry.kind, entry.at, entry.actor, entry.message) for entry in incident.timeline] == [
        ("created", CREATED_AT, None, "test alert"),
        ("closed", CLOSED_AT, "fili@ifountain.com", ""),
    ]


@pytest.mark.parametrize(
    ("name", "action"), [("create.json", "Create"), ("acknowledge.json", "Acknowledge"), ("add_note.json", "AddNote")]
)
def test_other_actions_are_ignored(name: str, action: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Ignored)
    assert repr(action) in outcome.reason


def test_action_is_matched_case_insensitively() -> None:
    payload = close_payload()
    payload["action"] = "close"
    assert accepted(run_payload(payload)).source_incident_id == "052652ac-5d1c-464a-812a-7dd18bbfba8c"


def test_updated_at_in_milliseconds_is_read_as_milliseconds() -> None:
    incident = accepted(run("close_updated_at_millis.json"))
    assert incident.resolved_at == datetime(2015, 1, 5, 10, 3, 44, 764000, tzinfo=UTC)


def test_iso_timestamps_with_offsets_are_accepted() -> None:
    incident = accepted(run("close_iso_timestamps.json"))
    assert incident.resolved_at == datetime(2015, 1, 5, 10, 3, 44, 764000, tzinfo=UTC)
    assert incident.started_at == CREATED_AT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1420452224, datetime(2015, 1, 5, 10, 3, 44, tzinfo=UTC)),
        (1420452224.5, datetime(2015, 1, 5, 10, 3, 44, 500000, tzinfo=UTC)),
        (1420452224764, datetime(2015, 1, 5, 10, 3, 44, 764000, tzinfo=UTC)),
        (1420452224764002, datetime(2015, 1, 5, 10, 3, 44, 764002, tzinfo=UTC)),
        (1420452224764002246, datetime(2015, 1, 5, 10, 3, 44, 764002, tzinfo=UTC)),
        ("1420452224764", datetime(2015, 1, 5, 10, 3, 44, 764000, tzinfo=UTC)),
        (0, None),
        (-1420452224764, None),
        (True, None),
        (float("nan"), None),
        (float("inf"), None),
        (10**30, None),
        ("12e3", None),
        ("", None),
        (None, None),
    ],
)
def test_epoch_unit_is_told_by_magnitude(value: object, expected: datetime | None) -> None:
    assert epoch_instant(value) == expected


def test_missing_priority_is_unknown() -> None:
    incident = accepted(run("close_missing_priority.json"))
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None
    assert "priority" not in incident.labels


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("P1", Severity.CRITICAL),
        ("P2", Severity.HIGH),
        ("P3", Severity.MEDIUM),
        ("P4", Severity.LOW),
        ("P5", Severity.LOW),
    ],
)
def test_priorities(priority: str, severity: Severity) -> None:
    payload = close_payload()
    payload["alert"]["priority"] = priority
    assert accepted(run_payload(payload)).severity is severity


def test_unicode_message_and_details() -> None:
    incident = accepted(run("close_unicode_message.json"))
    assert incident.title == "Zahlungen schlagen fehl — 決済エラー率上昇 ⚠️"
    assert incident.service == "zahlungs-api"
    assert incident.team == "Équipe Paiements"
    assert incident.labels["Region"] == "eu-central-1 (Frankfurt am Main)"
    assert incident.labels["tags"] == "Straße"


def test_missing_optional_fields() -> None:
    incident = accepted(run("close_missing_optional_fields.json"))
    assert incident.incident_key == "opsgenie:7e0c9b1f-2d1a-4e2b-8f3c-9a0b1c2d3e4f"
    assert incident.resolved_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert (incident.started_at, incident.service, incident.team, incident.fingerprint) == (None, None, None, None)
    assert incident.severity is Severity.UNKNOWN
    assert incident.labels == {}
    assert [(entry.kind, entry.actor) for entry in incident.timeline] == [("closed", None)]


def test_large_labels_are_bounded_and_the_drop_is_counted() -> None:
    incident = accepted(run("close_large_labels.json"))
    assert len(incident.labels) == MAX_LABELS
    assert all(len(value) <= MAX_LABEL_VALUE for value in incident.labels.values())
    assert len(incident.labels["detail_000"]) == MAX_LABEL_VALUE
    # 8 own labels always kept; 140 vendor labels (40 tags + 100 details) compete for the remaining 55 places.
    assert incident.labels["tiny_id"] == "23"
    assert incident.labels[LABELS_DROPPED] == str(140 - (MAX_LABELS - 8 - 1))


def test_created_after_the_close_leaves_started_at_empty() -> None:
    payload = close_payload()
    payload["alert"]["createdAt"] = 1420452299000  # after the close
    incident = accepted(run_payload(payload))
    assert incident.started_at is None
    assert incident.resolved_at == CLOSED_AT


def test_note_on_close_goes_to_the_timeline() -> None:
    payload = close_payload()
    payload["alert"]["note"] = "Replica caught up"
    assert accepted(run_payload(payload)).timeline[-1].message == "Replica caught up"


@pytest.mark.parametrize(
    ("name", "field"),
    [("malformed_missing_updated_at.json", "alert.updatedAt:"), ("malformed_alert_not_object.json", "alert:")],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("action"), "action:"),
        (lambda p: p["alert"].pop("alertId"), "alert.alertId:"),
        (lambda p: p["alert"].update(message="  "), "alert.message:"),
        (lambda p: p["alert"].update(updatedAt="soon"), "alert.updatedAt:"),
        (lambda p: p["alert"].update(updatedAt=0), "alert.updatedAt:"),
    ],
)
def test_required_fields_are_named(mutate: Any, field: str) -> None:
    payload = close_payload()
    mutate(payload)
    outcome = run_payload(payload)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)
