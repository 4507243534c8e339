import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import incidentio
from services.ingest.sources._labels import LABELS_DROPPED, MAX_LABEL_VALUE, MAX_LABELS
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
UPDATED = "public_incident.incident_updated_v2"
IMPACT_STARTED = datetime(2021, 8, 17, 13, 10, tzinfo=UTC)
REPORTED = datetime(2021, 8, 17, 13, 28, 57, 801578, tzinfo=UTC)
RESOLVED = datetime(2021, 8, 17, 15, 2, 11, tzinfo=UTC)
CLOSED = datetime(2021, 8, 18, 9, 30, tzinfo=UTC)


def run(name: str, config: NormalisationConfig = CONFIG) -> Outcome:
    return incidentio.normalise(RawIncident(fixture("incidentio", name), {"source": "incidentio"}), config)


def run_payload(payload: Any) -> Outcome:
    return incidentio.normalise(RawIncident(json.dumps(payload).encode()), CONFIG)


def closed_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(fixture("incidentio", "incident_updated_closed.json"))
    return payload


def accepted(outcome: Outcome) -> Any:
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    return incident


def test_closed_incident_maps_every_field() -> None:
    incident = accepted(run("incident_updated_closed.json"))
    assert incident.incident_key == "incidentio:01FDAG4SAP5TYPT98WGR2N7W91"
    assert incident.title == "Our database is sad"
    assert incident.severity is Severity.HIGH
    assert incident.source_severity == "Major"
    assert (incident.service, incident.team) == ("Payments API", "Product")
    assert incident.started_at == IMPACT_STARTED
    assert incident.resolved_at == RESOLVED
    assert incident.resolved_at.tzinfo is UTC
    assert incident.url == "https://app.incident.io/incidents/123"
    assert incident.fingerprint is None
    assert incident.labels == {
        "reference": "INC-123",
        "status": "Closed",
        "status_category": "closed",
        "incident_type": "Production Outage",
        "mode": "standard",
        "visibility": "public",
        "incident_lead": "Lisa Karlin Curtis",
        "slack_channel": "inc-123-our-database-is-sad",
        "postmortem_document_url": "https://docs.google.com/my_doc_id",
        "summary": "Our database is really really sad, and we don't know why yet.",
        "event_type": UPDATED,
        "Affected Team": "Product",
        "Affected services": "Payments API,Ledger",
        "Customer impact": "Card payments failed for 12% of checkouts",
        "role:Incident Lead": "Lisa Karlin Curtis",
    }
    assert [(entry.kind, entry.at) for entry in incident.timeline] == [
        ("Impact started", IMPACT_STARTED),
        ("Reported at", REPORTED),
        ("Resolved at", RESOLVED),
        ("Closed at", CLOSED),
    ]


def test_learning_without_resolved_timestamp_uses_updated_at() -> None:
    incident = accepted(run("incident_updated_learning.json"))
    assert incident.resolved_at == datetime(2021, 8, 17, 15, 4, 30, 500000, tzinfo=UTC)
    assert incident.labels["status_category"] == "learning"
    assert incident.labels["status"] == "Post-incident"


def test_later_edits_of_a_closed_incident_get_the_same_event_id() -> None:
    first = accepted(run("incident_updated_closed.json"))
    payload = closed_payload()
    payload[UPDATED]["updated_at"] = "2021-08-20T10:00:00Z"
    payload[UPDATED]["summary"] = "Edited during the debrief"
    assert accepted(run_payload(payload)).event_id == first.event_id


def test_status_updated_event_with_wrapped_incident() -> None:
    incident = accepted(run("incident_status_updated_closed.json"))
    assert incident.incident_key == "incidentio:01FDAG4SAP5TYPT98WGR2N7W91"
    assert incident.resolved_at == RESOLVED
    assert incident.labels["event_type"] == "public_incident.incident_status_updated_v2"


def test_retrospective_incident_created_closed_is_a_closure() -> None:
    incident = accepted(run("incident_created_retrospective_closed.json"))
    assert incident.incident_key == "incidentio:01FDAG4SAP5TYPT98WGR2N7W92"
    assert incident.labels["mode"] == "retrospective"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("incident_updated_live.json", "status category 'live'"),
        ("incident_updated_triage.json", "status category 'triage'"),
        ("incident_updated_declined.json", "status category 'declined'"),
        ("incident_updated_test_mode.json", "mode 'test'"),
        ("private_incident_updated.json", "private incident"),
        ("follow_up_created.json", "public_incident.follow_up_created_v1"),
    ],
)
def test_non_closures_are_ignored_with_a_reason(name: str, reason: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Ignored)
    assert reason in outcome.reason


def test_null_severity_is_unknown() -> None:
    incident = accepted(run("incident_updated_closed_null_severity.json"))
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None


@pytest.mark.parametrize(("name", "severity"), [("Critical", Severity.CRITICAL), ("Minor", Severity.LOW)])
def test_default_severity_names(name: str, severity: Severity) -> None:
    payload = closed_payload()
    payload[UPDATED]["severity"]["name"] = name
    assert accepted(run_payload(payload)).severity is severity


def test_renamed_severity_can_be_mapped_by_the_operator() -> None:
    payload = closed_payload()
    payload[UPDATED]["severity"]["name"] = "SEV 0 - Everything is on fire"
    assert accepted(run_payload(payload)).severity is Severity.UNKNOWN
    config = NormalisationConfig(
        severity_overrides={"incidentio": {"SEV 0 - Everything is on fire": Severity.CRITICAL}}
    )
    outcome = incidentio.normalise(RawIncident(json.dumps(payload).encode()), config)
    assert accepted(outcome).severity is Severity.CRITICAL


def test_unicode_name_and_service() -> None:
    incident = accepted(run("incident_updated_closed_unicode_name.json"))
    assert incident.title == "Zahlungen schlagen fehl — 決済が失敗しています 💳"
    assert incident.service == "Zahlungs-API (Straße)"


def test_missing_optional_fields() -> None:
    incident = accepted(run("incident_updated_closed_missing_optional_fields.json"))
    assert incident.incident_key == "incidentio:01FDAG4SAP5TYPT98WGR2N7W94"
    assert incident.started_at == datetime(2021, 9, 1, 8, 0, tzinfo=UTC)
    assert incident.resolved_at == datetime(2021, 9, 1, 9, 15, tzinfo=UTC)
    assert (incident.service, incident.team, incident.url, incident.source_severity) == (None, None, None, None)
    assert incident.severity is Severity.UNKNOWN
    assert incident.labels == {"status": "Closed", "status_category": "closed", "event_type": UPDATED}
    assert [(entry.kind, entry.at) for entry in incident.timeline] == [
        ("reported", datetime(2021, 9, 1, 8, 0, tzinfo=UTC)),
        ("Closed", datetime(2021, 9, 1, 9, 15, tzinfo=UTC)),
    ]


def test_large_labels_are_bounded() -> None:
    incident = accepted(run("incident_updated_closed_large_labels.json"))
    assert len(incident.labels) == MAX_LABELS
    assert all(len(value) <= MAX_LABEL_VALUE for value in incident.labels.values())
    assert len(incident.labels["Field 000"]) == MAX_LABEL_VALUE
    assert incident.labels["reference"] == "INC-123"
    # 11 own labels kept; 1 role + 100 custom fields compete for the remaining 52 places.
    assert incident.labels[LABELS_DROPPED] == str(101 - (MAX_LABELS - 11 - 1))


def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    incident = accepted(run("incident_updated_closed_offset_timestamps.json"))
    assert incident.started_at == IMPACT_STARTED
    assert incident.resolved_at == RESOLVED
    assert incident.resolved_at.isoformat() == "2021-08-17T15:02:11+00:00"


def test_closed_at_is_used_when_there_is_no_resolved_at() -> None:
    payload = closed_payload()
    values = payload[UPDATED]["incident_timestamp_values"]
    payload[UPDATED]["incident_timestamp_values"] = [
        value for value in values if value["incident_timestamp"]["name"] != "Resolved at"
    ]
    assert accepted(run_payload(payload)).resolved_at == CLOSED


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("malformed_missing_status.json", f"{UPDATED}.incident_status:"),
        ("malformed_no_resolution_time.json", f"{UPDATED}.updated_at:"),
    ],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "event_type:"),
        ({"event_type": UPDATED}, f"{UPDATED}:"),
        ({"event_type": UPDATED, UPDATED: {"incident_status": {}}}, f"{UPDATED}.incident_status:"),
        ({"event_type": UPDATED, UPDATED: {"incident_status": {"category": "closed"}}}, f"{UPDATED}.id:"),
        (
            {"event_type": UPDATED, UPDATED: {"id": "01X", "incident_status": {"category": "closed"}}},
            f"{UPDATED}.name:",
        ),
    ],
)
def test_required_fields_are_named(payload: dict[str, Any], field: str) -> None:
    outcome = run_payload(payload)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)
