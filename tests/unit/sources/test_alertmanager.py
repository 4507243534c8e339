import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import IncidentClosed, Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import alertmanager
from services.ingest.sources._labels import LABELS_DROPPED
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()


def run(name: str, headers: dict[str, str] | None = None, config: NormalisationConfig = CONFIG) -> Outcome:
    return alertmanager.normalise(RawIncident(fixture("alertmanager", name), headers or {}), config)


def run_payload(payload: object, headers: dict[str, str] | None = None) -> Outcome:
    return alertmanager.normalise(RawIncident(json.dumps(payload).encode(), headers or {}), CONFIG)


def accepted(outcome: Outcome) -> tuple[IncidentClosed, ...]:
    assert isinstance(outcome, Accepted), outcome
    return outcome.incidents


def payload(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture("alertmanager", name))
    return document


def test_a_resolved_alert_maps_every_field() -> None:
    (incident,) = accepted(run("resolved_single.json"))
    assert incident.incident_key == "alertmanager:1a30ba71cca2921f@20230206T130845Z"
    assert incident.source == "alertmanager"
    assert incident.title == "BlackBox Probe Failure: https://server.example.org"
    assert incident.severity is Severity.CRITICAL
    assert incident.source_severity == "critical"
    assert (incident.service, incident.team) == ("http_checks", "web-platform")
    assert incident.started_at == datetime(2023, 2, 6, 13, 8, 45, 828000, tzinfo=UTC)
    assert incident.resolved_at == datetime(2023, 2, 6, 13, 21, 15, 828000, tzinfo=UTC)
    assert incident.url == "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1"
    assert incident.labels == {
        "alertname": "ProbeFailure",
        "instance": "https://server.example.org",
        "job": "http_checks",
        "monitor": "master",
        "severity": "critical",
        "team": "web-platform",
    }
    assert incident.fingerprint == "1a30ba71cca2921f"
    assert [(entry.kind, entry.at) for entry in incident.timeline] == [
        ("triggered", incident.started_at),
        ("resolved", incident.resolved_at),
    ]
    assert incident.timeline[0].message == incident.title


def test_the_same_notification_always_gives_the_same_event_ids() -> None:
    assert accepted(run("resolved_single.json")) == accepted(run("resolved_single.json"))


def test_each_resolved_alert_of_a_mixed_group_is_its_own_incident() -> None:
    incidents = accepted(run("mixed_firing_and_resolved.json"))
    assert [incident.incident_key for incident in incidents] == [
        "alertmanager:1a30ba71cca2921f@20230206T130845Z",
        "alertmanager:c4a1e2f0b3d5a6e7@20180803T075226Z",
    ]
    disk = incidents[1]
    # Nanoseconds and a +02:00 offset, as Alertmanager writes them, end as UTC (microseconds).
    assert disk.started_at == datetime(2018, 8, 3, 7, 52, 26, 739266, tzinfo=UTC)
    assert disk.resolved_at == datetime(2018, 8, 3, 8, 12, 26, 739266, tzinfo=UTC)
    assert (disk.title, disk.service, disk.severity) == ("Disk /var is 97% full", "orders-db", Severity.MEDIUM)


def test_a_refire_of_the_same_alert_is_a_new_incident_with_the_same_fingerprint() -> None:
    first = payload("resolved_single.json")
    again = payload("resolved_single.json")
    again["alerts"][0]["startsAt"] = "2023-02-07T08:00:00Z"
    again["alerts"][0]["endsAt"] = "2023-02-07T08:30:00Z"
    (one,), (two,) = accepted(run_payload(first)), accepted(run_payload(again))
    assert one.incident_key != two.incident_key
    assert one.fingerprint == two.fingerprint == "1a30ba71cca2921f"


def test_only_firing_alerts_are_ignored_with_how_many() -> None:
    outcome = run("all_firing.json")
    assert outcome == Ignored("no resolved alerts (2 firing)")


def test_truncated_alerts_are_reported_on_the_incidents() -> None:
    (incident,) = accepted(run("truncated.json"))
    assert incident.labels["alertmanager_truncated_alerts"] == "7"


def test_truncated_alerts_are_reported_when_nothing_resolved_is_visible() -> None:
    outcome = run("truncated_only_firing.json")
    assert isinstance(outcome, Ignored)
    assert outcome.reason.startswith("no resolved alerts (1 firing)")
    assert "4 alerts were truncated by max_alerts" in outcome.reason


def test_missing_optional_fields_fall_back() -> None:
    (incident,) = accepted(run("resolved_missing_optional_fields.json"))
    assert incident.title == "Watchdog"
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None
    assert (incident.service, incident.team, incident.url) == (None, None, None)
    # No fingerprint sent: one is derived from the label set, stable across notifications.
    assert incident.fingerprint is not None
    assert incident.fingerprint.startswith("labels-")
    assert incident.incident_key == f"alertmanager:{incident.fingerprint}@20240516T100000Z"
    (again,) = accepted(run("resolved_missing_optional_fields.json"))
    assert again.fingerprint == incident.fingerprint


def test_times_with_offsets_and_without_fractions_are_utc() -> None:
    (incident,) = accepted(run("resolved_timestamps_with_offsets.json"))
    assert incident.started_at == datetime(2024, 5, 16, 10, 34, 5, tzinfo=UTC)
    assert incident.resolved_at == datetime(2024, 5, 16, 11, 0, 0, 500000, tzinfo=UTC)
    assert incident.incident_key == "alertmanager:0123456789abcdef@20240516T103405Z"
    assert incident.severity is Severity.HIGH


def test_unicode_survives() -> None:
    (incident,) = accepted(run("resolved_unicode.json"))
    assert incident.title == "Latenz über 2 s \u2013 決済 API が遅い 🔥"  # an en dash
    assert incident.labels["alertname"] == "レイテンシ高"
    assert incident.labels["emoji"] == "🔥"
    assert incident.team == "équipe-paiements"


def test_labels_are_bounded_and_the_dropped_count_is_said() -> None:
    (incident,) = accepted(run("resolved_large_labels.json"))
    assert len(incident.labels) == 64
    assert all(len(value) <= 1000 for value in incident.labels.values())
    assert len(incident.labels["huge"]) == 1000
    # The labels the mapping reads are kept first; 94 sent, 63 kept, 1 slot says how many were left out.
    assert {"alertname", "severity", "job"} <= incident.labels.keys()
    assert incident.labels[LABELS_DROPPED] == "31"


def test_zero_ends_at_falls_back_to_the_time_the_notification_was_received() -> None:
    (incident,) = accepted(run("resolved_zero_endsat.json", {"received-at": "2024-03-01T12:07:30+00:00"}))
    assert incident.resolved_at == datetime(2024, 3, 1, 12, 7, 30, tzinfo=UTC)
    assert incident.labels["resolved_at_source"] == "received-at"
    assert incident.timeline[-1].message.startswith("resolve time unknown")


def test_zero_ends_at_without_a_received_time_is_invalid() -> None:
    outcome = run("resolved_zero_endsat.json")
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("alerts[0].endsAt: ")


@pytest.mark.parametrize(
    ("name", "field"),
    [("invalid_missing_startsat.json", "alerts[0].startsAt"), ("invalid_alerts_not_a_list.json", "alerts")],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(f"{field}: ")


def test_an_unknown_payload_version_is_invalid() -> None:
    outcome = run_payload({**payload("resolved_single.json"), "version": "5"})
    assert outcome == Invalid("version: '5' is not supported (expected '4')")


def test_an_alert_that_is_not_an_object_is_invalid() -> None:
    document = payload("resolved_single.json")
    document["alerts"].append("oops")
    outcome = run_payload(document)
    assert outcome == Invalid("alerts[1]: expected an object, got str")


def test_ends_before_it_starts_is_invalid() -> None:
    document = payload("resolved_single.json")
    document["alerts"][0]["endsAt"] = "2023-02-06T12:00:00Z"
    assert run_payload(document) == Invalid("alerts[0].endsAt: before startsAt")


def test_a_fingerprint_too_long_for_an_id_is_invalid() -> None:
    document = payload("resolved_single.json")
    document["alerts"][0]["fingerprint"] = "f" * 600
    outcome = run_payload(document)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("alerts[0].fingerprint: longer than")


def test_a_body_that_is_not_json_is_invalid() -> None:
    outcome = alertmanager.normalise(RawIncident(b"{not json"), CONFIG)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("body is not JSON")


@pytest.mark.parametrize(
    ("label", "expected"),
    [("page", Severity.HIGH), ("ticket", Severity.MEDIUM), ("none", Severity.LOW), ("bogus", Severity.UNKNOWN)],
)
def test_builtin_severity_conventions(label: str, expected: Severity) -> None:
    document = payload("resolved_single.json")
    document["alerts"][0]["labels"]["severity"] = label
    (incident,) = accepted(run_payload(document))
    assert (incident.severity, incident.source_severity) == (expected, label)


def test_operators_override_severities_per_source() -> None:
    config = NormalisationConfig(severity_overrides={"alertmanager": {"critical": Severity.HIGH}})
    (incident,) = accepted(run("resolved_single.json", config=config))
    assert incident.severity is Severity.HIGH
