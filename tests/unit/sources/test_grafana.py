import json
from datetime import UTC, datetime

import pytest

from schemas import IncidentClosed, Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import alertmanager, grafana
from services.ingest.sources._labels import LABELS_DROPPED
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()


def run(name: str) -> Outcome:
    return grafana.normalise(RawIncident(fixture("grafana", name)), CONFIG)


def run_payload(payload: object) -> Outcome:
    return grafana.normalise(RawIncident(json.dumps(payload).encode()), CONFIG)


def accepted(outcome: Outcome) -> tuple[IncidentClosed, ...]:
    assert isinstance(outcome, Accepted), outcome
    return outcome.incidents


def test_a_resolved_alert_maps_every_field() -> None:
    (incident,) = accepted(run("resolved_single.json"))
    assert incident.incident_key == "grafana:c6eadffa33fcdf37@20211012T075103Z"
    assert incident.source == "grafana"
    assert incident.title == "This alert was triggered for zone us-1"
    assert (incident.severity, incident.source_severity) == (Severity.CRITICAL, "critical")
    assert (incident.service, incident.team) == (None, "blue")
    assert incident.started_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert incident.resolved_at == datetime(2021, 10, 12, 8, 21, 3, 157076, tzinfo=UTC)
    assert incident.url == "https://grafana.example.org/d/mem01?orgId=1&viewPanel=2"
    assert incident.labels == {
        "alertname": "High memory usage",
        "grafana_folder": "Infra",
        "grafana_image_url": "https://grafana.example.org/public/img/attachments/mem01.png",
        "grafana_org_id": "1",
        "severity": "critical",
        "team": "blue",
        "zone": "us-1",
    }
    assert incident.fingerprint == "c6eadffa33fcdf37"
    triggered, resolved = incident.timeline
    assert (triggered.kind, triggered.at) == ("triggered", incident.started_at)
    assert triggered.message == "This alert was triggered for zone us-1\nB=44.23943737541908, C=1"
    assert (resolved.kind, resolved.at) == ("resolved", incident.resolved_at)


def test_only_the_resolved_alert_of_a_mixed_group_is_an_incident() -> None:
    (incident,) = accepted(run("mixed_firing_and_resolved.json"))
    assert incident.incident_key == "grafana:d15cd15cd15cd15c@20211012T070000Z"
    assert (incident.service, incident.severity) == ("storage", Severity.MEDIUM)
    # No panel or dashboard (empty strings): the rule's URL.
    assert incident.url == "https://grafana.example.org/alerting/grafana/d15cd15c/view"
    assert incident.timeline[0].message.endswith("[ var='B' labels={} value=93.5 ]")


def test_the_dashboard_is_linked_when_there_is_no_panel() -> None:
    document = json.loads(fixture("grafana", "resolved_single.json"))
    document["alerts"][0]["panelURL"] = ""
    (incident,) = accepted(run_payload(document))
    assert incident.url == "https://grafana.example.org/d/mem01?orgId=1"


def test_the_documented_firing_example_is_ignored() -> None:
    assert run("all_firing.json") == Ignored("no resolved alerts (2 firing)")


def test_truncated_alerts_are_reported() -> None:
    (incident,) = accepted(run("truncated.json"))
    assert incident.labels["grafana_truncated_alerts"] == "12"


def test_missing_optional_fields_fall_back() -> None:
    (incident,) = accepted(run("resolved_missing_optional_fields.json"))
    assert incident.title == "Minimal"
    assert incident.labels == {"alertname": "Minimal"}
    assert incident.url == "https://grafana.example.org/alerting/grafana/minimal/view"
    assert incident.severity is Severity.UNKNOWN


def test_grafana_payload_version_1_is_grafanas_not_alertmanagers() -> None:
    assert isinstance(run("resolved_single.json"), Accepted)
    misrouted = alertmanager.normalise(RawIncident(fixture("grafana", "resolved_single.json")), CONFIG)
    assert misrouted == Invalid("version: '1' is not supported (expected '4')")


def test_unicode_survives() -> None:
    (incident,) = accepted(run("resolved_unicode.json"))
    assert incident.title == "Température du serveur > 80 °C 🌡️ — サーバー温度"
    assert incident.team == "données"
    assert incident.started_at == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


def test_labels_are_bounded() -> None:
    (incident,) = accepted(run("resolved_large_labels.json"))
    assert len(incident.labels) == 64
    assert len(incident.labels["detail"]) == 1000
    assert "grafana_org_id" in incident.labels
    assert LABELS_DROPPED in incident.labels


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("legacy_alerting.json", "alerts: required; legacy Grafana alerting payloads"),
        ("invalid_malformed_endsat.json", "alerts[0].endsAt: not an ISO 8601 time"),
    ],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, reason: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(reason)
