import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import datadog
from services.ingest.sources._labels import LABELS_DROPPED, MAX_LABEL_VALUE, MAX_LABELS
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
RECOVERED_AT = datetime(2024, 6, 10, 16, 5, 12, tzinfo=UTC)
TEMPLATE = Path(datadog.__file__).with_name("datadog_template.json")


def run(name: str, config: NormalisationConfig = CONFIG) -> Outcome:
    return datadog.normalise(RawIncident(fixture("datadog", name), {"source": "datadog"}), config)


def run_payload(payload: Any) -> Outcome:
    return datadog.normalise(RawIncident(json.dumps(payload).encode()), CONFIG)


def recovered_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(fixture("datadog", "recovered.json"))
    return payload


def accepted(outcome: Outcome) -> Any:
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    return incident


def test_recovered_maps_every_field() -> None:
    incident = accepted(run("recovered.json"))
    assert incident.incident_key == "datadog:7264831230164837249"
    assert incident.title == "High CPU on web-01"
    assert incident.severity is Severity.HIGH
    assert incident.source_severity == "P2"
    assert (incident.service, incident.team) == ("checkout-api", "payments")
    assert incident.started_at is None
    assert incident.resolved_at == RECOVERED_AT
    assert incident.resolved_at.tzinfo is UTC
    assert incident.url == "https://app.datadoghq.com/event/event?id=7264832095487366531"
    assert incident.fingerprint == "12345678|host:web-01"
    assert incident.labels == {
        "monitor_id": "12345678",
        "alert_cycle_key": "7264831230164837249",
        "aggreg_key": "9bd4ac313a4d1e8fae2482df7b77628",
        "priority": "P2",
        "alert_type": "success",
        "event_type": "query_alert_monitor",
        "alert_metric": "system.cpu.user",
        "hostname": "web-01",
        "scope": "host:web-01",
        "tags": "monitor",
        "org_id": "123456",
        "org_name": "Acme",
        "datadog_event_id": "7264832095487366531",
        "env": "prod",
        "host": "web-01",
        "service": "checkout-api",
        "team": "payments",
    }
    assert [(entry.kind, entry.at, entry.message) for entry in incident.timeline] == [
        ("recovered", RECOVERED_AT, "system.cpu.user over host:web-01 was <= 80.0 on average during the last 5m.")
    ]


@pytest.mark.parametrize(
    ("name", "transition"),
    [
        ("triggered.json", "Triggered"),
        ("re_triggered.json", "Re-Triggered"),
        ("warn.json", "Warn"),
        ("no_data.json", "No Data"),
        ("renotify.json", "Renotify"),
    ],
)
def test_other_transitions_are_ignored(name: str, transition: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Ignored)
    assert repr(transition) in outcome.reason


def test_no_priority_is_unknown() -> None:
    incident = accepted(run("recovered_no_priority.json"))
    assert incident.severity is Severity.UNKNOWN
    assert incident.source_severity is None
    assert "priority" not in incident.labels


def test_unicode_title_and_tags() -> None:
    incident = accepted(run("recovered_unicode_title.json"))
    assert incident.title == "Fehlerrate über 5 % — 決済API 🔥"
    assert (incident.service, incident.team) == ("zahlungs-api", "équipe-paiements")
    assert incident.labels["région"] == "eu"


def test_without_cycle_key_the_monitor_and_aggregation_key_identify_the_alert() -> None:
    incident = accepted(run("recovered_missing_optional_fields.json"))
    assert incident.incident_key == "datadog:87654321:5d2f0c6a1b7e4d3c"
    assert incident.title == "Queue depth high"
    assert (incident.service, incident.team, incident.url, incident.started_at) == (None, None, None, None)
    assert incident.fingerprint == "87654321"
    assert incident.labels == {"monitor_id": "87654321", "aggreg_key": "5d2f0c6a1b7e4d3c"}


def test_unsubstituted_variables_count_as_absent() -> None:
    incident = accepted(run("recovered_unsubstituted_variables.json"))
    assert incident.incident_key == "datadog:12345678:9bd4ac313a4d1e8fae2482df7b77628"
    assert incident.severity is Severity.UNKNOWN
    assert incident.url is None


def test_numbers_instead_of_strings_are_read() -> None:
    incident = accepted(run("recovered_numeric_values.json"))
    assert incident.resolved_at == RECOVERED_AT
    assert incident.labels["monitor_id"] == "12345678"
    assert incident.labels["org_id"] == "123456"


def test_multi_tag_scope_gives_an_order_independent_fingerprint() -> None:
    incident = accepted(run("recovered_multi_scope.json"))
    assert incident.title == "Load high"
    assert incident.severity is Severity.MEDIUM
    assert incident.fingerprint == "12345678|availability-zone:us-east-1a,role:computing-node"
    assert incident.labels["availability-zone"] == "us-east-1a"
    assert incident.labels["role"] == "computing-node"


def test_large_labels_are_bounded() -> None:
    incident = accepted(run("recovered_large_labels.json"))
    assert len(incident.labels) == MAX_LABELS
    assert all(len(value) <= MAX_LABEL_VALUE for value in incident.labels.values())
    assert incident.labels["monitor_id"] == "12345678"
    # 13 own labels kept; 150 k:v tags + host + long compete for the remaining 50 places.
    assert incident.labels[LABELS_DROPPED] == str(152 - (MAX_LABELS - 13 - 1))


def test_last_updated_is_used_when_date_is_missing() -> None:
    payload = recovered_payload()
    payload["date"] = "$DATE"
    payload["last_updated"] = "1718035513000"
    assert accepted(run_payload(payload)).resolved_at == datetime(2024, 6, 10, 16, 5, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("malformed_missing_date.json", "date:"),
        ("malformed_missing_identity.json", "alert_cycle_key:"),
        ("default_payload.json", "alert_transition:"),
    ],
)
def test_malformed_payloads_are_invalid_naming_the_field(name: str, field: str) -> None:
    outcome = run(name)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field)


def test_missing_title_is_invalid() -> None:
    payload = recovered_payload()
    del payload["title"]
    payload["alert_title"] = "$ALERT_TITLE"
    outcome = run_payload(payload)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("title:")


def test_form_encoded_body_is_invalid() -> None:
    outcome = datadog.normalise(RawIncident(b"alert_transition=Recovered&alert_id=1"), CONFIG)
    assert isinstance(outcome, Invalid)
    assert "not JSON" in outcome.reason


def test_the_shipped_template_is_json_and_maps_once_datadog_fills_it() -> None:
    template = TEMPLATE.read_text(encoding="utf-8")
    assert json.loads(template)["alert_transition"] == "$ALERT_TRANSITION"
    values = {
        "ID": "7264832095487366531",
        "EVENT_TYPE": "query_alert_monitor",
        "EVENT_TITLE": "[Recovered] [P1] Checkout errors",
        "ALERT_TITLE": "[Recovered] Checkout errors",
        "ALERT_TRANSITION": "Recovered",
        "ALERT_TYPE": "success",
        "ALERT_ID": "42",
        "ALERT_CYCLE_KEY": "7264831230164837000",
        "ALERT_PRIORITY": "P1",
        "ALERT_STATUS": "errors back under 1%",
        "ALERT_SCOPE": "service:checkout",
        "ALERT_METRIC": "trace.http.request.errors",
        "AGGREG_KEY": "abc",
        "DATE": "1718035512000",
        "LAST_UPDATED": "1718035512000",
        "LINK": "https://app.datadoghq.com/monitors/42",
        "TAGS": "env:prod,team:payments",
        "HOSTNAME": "",
        "ORG_ID": "1",
        "ORG_NAME": "Acme",
    }
    filled = re.sub(r"\$([A-Z_]+)", lambda match: values[match.group(1)], template)
    incident = accepted(datadog.normalise(RawIncident(filled.encode()), CONFIG))
    assert incident.incident_key == "datadog:7264831230164837000"
    assert incident.title == "Checkout errors"
    assert incident.severity is Severity.CRITICAL
    assert (incident.service, incident.team) == ("checkout", "payments")
    assert incident.resolved_at == RECOVERED_AT
    assert "hostname" not in incident.labels


def test_the_template_unfilled_is_invalid_not_an_incident() -> None:
    outcome = datadog.normalise(RawIncident(TEMPLATE.read_bytes()), CONFIG)
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith("alert_transition:")


def test_tags_sent_as_a_json_list_are_read_too() -> None:
    payload = recovered_payload()
    payload["tags"] = ["env:staging", "service:search"]
    incident = accepted(run_payload(payload))
    assert (incident.labels["env"], incident.service, incident.team) == ("staging", "search", None)


def test_vendor_values_in_reasons_are_kept_short() -> None:
    payload = recovered_payload()
    payload["alert_transition"] = "Triggered " * 100
    outcome = run_payload(payload)
    assert isinstance(outcome, Ignored)
    assert len(outcome.reason) < 120
