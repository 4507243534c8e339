import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas import IncidentClosed, Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import zabbix
from services.ingest.sources._labels import LABELS_DROPPED
from tests.support.fixtures import fixture

BERLIN = NormalisationConfig(zabbix_timezone=ZoneInfo("Europe/Berlin"))
MEDIA_TYPE_SCRIPT = Path(zabbix.__file__).with_name("zabbix_mediatype.js")


def run(name: str, config: NormalisationConfig = BERLIN) -> Outcome:
    return zabbix.normalise(RawIncident(fixture("zabbix", name)), config)


def run_payload(payload: object, config: NormalisationConfig = BERLIN) -> Outcome:
    return zabbix.normalise(RawIncident(json.dumps(payload).encode()), config)


def payload(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture("zabbix", name))
    return document


def accepted(outcome: Outcome) -> IncidentClosed:
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    return incident


def test_a_recovery_maps_every_field() -> None:
    incident = accepted(run("recovery.json"))
    assert incident.incident_key == "zabbix:4216"
    assert incident.source == "zabbix"
    assert incident.title == "High CPU utilization (over 90% for 5m)"
    assert (incident.severity, incident.source_severity) == (Severity.HIGH, "High")
    assert (incident.service, incident.team) == ("checkout", "payments")
    # 12:34:56 and 13:05:10 on 2024-05-16 in Berlin (CEST, UTC+2).
    assert incident.started_at == datetime(2024, 5, 16, 10, 34, 56, tzinfo=UTC)
    assert incident.resolved_at == datetime(2024, 5, 16, 11, 5, 10, tzinfo=UTC)
    assert incident.url == "https://zabbix.example.org/tr_events.php?triggerid=23312&eventid=4216"
    assert incident.labels == {
        "class": "os",
        "scope": "performance, capacity",
        "service": "checkout",
        "team": "payments",
        "zabbix_host": "checkout-api-1",
        "zabbix_recovery_event_id": "4230",
    }
    assert incident.fingerprint == "23312"
    assert [(entry.kind, entry.at, entry.message) for entry in incident.timeline] == [
        ("triggered", incident.started_at, incident.title),
        ("resolved", incident.resolved_at, "recovery event 4230"),
    ]


def test_local_times_are_read_in_the_configured_zone() -> None:
    with_timestamps = accepted(run("recovery.json"))
    local_only = accepted(run("recovery_local_times_only.json"))
    assert (local_only.started_at, local_only.resolved_at) == (with_timestamps.started_at, with_timestamps.resolved_at)
    # The same local times on a server in UTC are two hours later.
    in_utc = accepted(run("recovery_local_times_only.json", NormalisationConfig()))
    assert in_utc.resolved_at == datetime(2024, 5, 16, 13, 5, 10, tzinfo=UTC)


def test_a_problem_spanning_the_autumn_clock_change_lasts_three_hours() -> None:
    incident = accepted(run("recovery_dst_autumn_local_times.json"))
    assert incident.started_at == datetime(2024, 10, 26, 23, 30, tzinfo=UTC)  # 01:30 CEST
    assert incident.resolved_at == datetime(2024, 10, 27, 2, 30, tzinfo=UTC)  # 03:30 CET
    assert incident.started_at is not None
    assert incident.resolved_at - incident.started_at == timedelta(hours=3)


def test_the_repeated_hour_is_decided_by_the_unix_timestamps() -> None:
    incident = accepted(run("recovery_dst_ambiguous_hour_with_timestamps.json"))
    assert incident.started_at == datetime(2024, 10, 27, 0, 10, tzinfo=UTC)  # the first 02:10 (CEST)
    assert incident.resolved_at == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)  # the second 02:30 (CET)


def test_without_timestamps_an_ambiguous_local_time_is_its_first_occurrence() -> None:
    document = payload("recovery_dst_ambiguous_hour_with_timestamps.json")
    del document["event_timestamp"], document["event_recovery_timestamp"]
    incident = accepted(run_payload(document))
    assert incident.resolved_at == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET


def test_a_problem_spanning_the_spring_clock_change_lasts_two_minutes() -> None:
    incident = accepted(run("recovery_dst_spring_local_times.json"))
    assert incident.started_at == datetime(2024, 3, 31, 0, 59, tzinfo=UTC)  # 01:59 CET
    assert incident.resolved_at == datetime(2024, 3, 31, 1, 1, tzinfo=UTC)  # 03:01 CEST


def test_missing_optional_fields_fall_back() -> None:
    incident = accepted(run("recovery_missing_optional_fields.json"))
    assert incident.incident_key == "zabbix:6001"
    assert incident.title == "Zabbix problem 6001"
    assert (incident.severity, incident.source_severity) == (Severity.MEDIUM, "3")
    assert incident.resolved_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert (incident.started_at, incident.service, incident.url, incident.fingerprint) == (None, None, None, None)
    assert incident.labels == {}
    assert [entry.kind for entry in incident.timeline] == ["resolved"]


def test_an_unresolved_event_value_falls_back_to_the_status_and_tags_may_be_json_text() -> None:
    incident = accepted(run("recovery_status_only.json"))
    assert (incident.severity, incident.source_severity) == (Severity.CRITICAL, "Disaster")
    assert incident.service == "ledger"
    assert incident.labels["service"] == "ledger"


def test_unicode_survives() -> None:
    incident = accepted(run("recovery_unicode.json"))
    assert incident.title == "Festplatte /var fast voll — ディスク残量低下 💾"
    assert incident.service == "Buchhaltung"
    assert incident.labels["équipe"] == "données"
    assert (incident.severity, incident.source_severity) == (Severity.LOW, "Warning")


def test_tags_are_bounded() -> None:
    incident = accepted(run("recovery_large_tags.json"))
    assert len(incident.labels) == 64
    assert len(incident.labels["huge"]) == 1000
    assert incident.labels["zabbix_host"] == "checkout-api-1"
    assert incident.labels["service"] == "bulk"
    assert LABELS_DROPPED in incident.labels


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("problem.json", "problem event, not a recovery"),
        ("update_acknowledged.json", "update operation (acknowledged), not a recovery"),
        ("internal_event_recovered.json", "event source '3' is not a trigger (0)"),
    ],
)
def test_problems_updates_and_other_sources_are_ignored(name: str, reason: str) -> None:
    assert run(name) == Ignored(reason)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("invalid_recovery_without_time.json", "event_recovery_date"),
        ("invalid_malformed_recovery_date.json", "event_recovery_date"),
        ("invalid_missing_event_id.json", "event_id"),
    ],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(f"{field}: ")


def test_an_unknown_event_value_is_invalid() -> None:
    outcome = run_payload({**payload("recovery.json"), "event_value": "2", "event_status": "?"})
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("event_value: ")


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("Not classified", "0", Severity.UNKNOWN),
        ("Information", "1", Severity.LOW),
        ("Warning", "2", Severity.LOW),
        ("Average", "3", Severity.MEDIUM),
        ("High", "4", Severity.HIGH),
        ("Disaster", "5", Severity.CRITICAL),
        ("Sev-Renamed", "4", Severity.HIGH),  # names can be renamed in Zabbix; the number still says it
    ],
)
def test_zabbix_severities(name: str, number: str, expected: Severity) -> None:
    incident = accepted(run_payload({**payload("recovery.json"), "event_severity": name, "event_nseverity": number}))
    assert (incident.severity, incident.source_severity) == (expected, name)


def test_operators_override_severities_by_name() -> None:
    config = NormalisationConfig(
        severity_overrides={"zabbix": {"Warning": Severity.MEDIUM}}, zabbix_timezone=ZoneInfo("Europe/Berlin")
    )
    assert accepted(run("recovery_unicode.json", config)).severity is Severity.MEDIUM


NODE = shutil.which("node")
# A stand-in for Zabbix's script engine: ``HttpRequest`` records the request, ``Zabbix.log`` is silent.
HARNESS = """
const fs = require('fs');
const captured = {headers: []};
function HttpRequest() {}
HttpRequest.prototype.addHeader = function (h) { captured.headers.push(h); };
HttpRequest.prototype.setProxy = function (p) { captured.proxy = p; };
HttpRequest.prototype.post = function (url, data) { captured.url = url; captured.body = data; return '{}'; };
HttpRequest.prototype.getStatus = function () { return 202; };
const Zabbix = {log: function () {}};
const script = fs.readFileSync(process.argv[1], 'utf8');
captured.result = new Function('value', 'HttpRequest', 'Zabbix', script)(process.argv[2], HttpRequest, Zabbix);
process.stdout.write(JSON.stringify(captured));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_shipped_media_type_sends_what_the_normaliser_reads() -> None:
    expected = payload("recovery.json")
    # What Zabbix hands the script: every parameter as an expanded string, {EVENT.TAGSJSON} as JSON text.
    parameters = {
        **expected,
        "endpoint": "https://ingest.example.org/webhooks/zabbix",
        "token": "s3cret",
        "http_proxy": "",
        "event_tags": json.dumps(expected["event_tags"]),
    }
    completed = subprocess.run(
        [str(NODE), "-e", HARNESS, str(MEDIA_TYPE_SCRIPT), json.dumps(parameters)],
        capture_output=True,
        check=True,
        text=True,
        timeout=30,
    )
    request = json.loads(completed.stdout)
    assert request["result"] == "OK"
    assert request["url"] == "https://ingest.example.org/webhooks/zabbix"
    assert "Authorization: Bearer s3cret" in request["headers"]
    assert "Content-Type: application/json" in request["headers"]
    sent = json.loads(request["body"])
    assert sent == expected  # transport parameters stay out; tags arrive as an array
    assert accepted(zabbix.normalise(RawIncident(request["body"].encode()), BERLIN)) == accepted(run("recovery.json"))
