"""Lone UTF-16 surrogates (``"\\ud800"`` is legal JSON, not encodable UTF-8) never make a source raise.

``schemas`` refuses them in ``IncidentClosed`` text; the sources replace them (with ``?``) when they read vendor text,
so the incident is accepted with the text repaired, or the payload is invalid, never an exception.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest

from schemas import IncidentClosed
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Invalid, Outcome, RawIncident
from services.ingest.sources import (
    alertmanager,
    datadog,
    grafana,
    grafana_oncall,
    incidentio,
    opsgenie,
    pagerduty,
    zabbix,
)
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
SURROGATE = "\ud800"
Normaliser = Callable[[RawIncident, NormalisationConfig], Outcome]


def with_surrogate(source: str, name: str, path: tuple[str | int, ...], value: str = SURROGATE) -> bytes:
    """The fixture with the value at ``path`` set; ``json.dumps`` writes the surrogate as the escape ``\\ud800``."""
    document: Any = json.loads(fixture(source, name))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    body = json.dumps(document).encode()
    assert b"\\ud800" in body
    return body


def settled(normalise: Normaliser, body: bytes) -> Outcome:
    outcome = normalise(RawIncident(body), CONFIG)
    assert isinstance(outcome, Accepted | Invalid), outcome
    if isinstance(outcome, Accepted):
        for incident in outcome.incidents:
            serialised = incident.model_dump_json()
            assert IncidentClosed.model_validate_json(serialised) == incident
    return outcome


def test_an_alertmanager_fingerprint_that_is_a_lone_surrogate_is_replaced() -> None:
    body = with_surrogate("alertmanager", "resolved_single.json", ("alerts", 0, "fingerprint"))
    outcome = settled(alertmanager.normalise, body)
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.fingerprint == "?"
    assert incident.incident_key == "alertmanager:?@20230206T130845Z"


def test_a_pagerduty_id_that_is_a_lone_surrogate_is_replaced() -> None:
    body = with_surrogate("pagerduty", "resolved.json", ("event", "data", "id"))
    outcome = settled(pagerduty.normalise, body)
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.incident_key == "pagerduty:?"


@pytest.mark.parametrize(
    ("normalise", "source", "name", "path"),
    [
        (alertmanager.normalise, "alertmanager", "resolved_single.json", ("alerts", 0, "annotations", "summary")),
        (alertmanager.normalise, "alertmanager", "resolved_single.json", ("alerts", 0, "labels", "job")),
        (alertmanager.normalise, "alertmanager", "resolved_single.json", ("alerts", 0, "generatorURL")),
        (alertmanager.normalise, "alertmanager", "resolved_missing_optional_fields.json", ("alerts", 0, "labels", "x")),
        (grafana.normalise, "grafana", "resolved_single.json", ("alerts", 0, "valueString")),
        (grafana_oncall.normalise, "grafana-oncall", "resolved.json", ("alert_group", "id")),
        (grafana_oncall.normalise, "grafana-oncall", "resolved.json", ("alert_group", "title")),
        (zabbix.normalise, "zabbix", "recovery.json", ("event_id",)),
        (zabbix.normalise, "zabbix", "recovery.json", ("event_name",)),
        (pagerduty.normalise, "pagerduty", "resolved.json", ("event", "data", "title")),
        (opsgenie.normalise, "opsgenie", "close.json", ("alert", "alertId")),
        (opsgenie.normalise, "opsgenie", "close.json", ("alert", "message")),
        (datadog.normalise, "datadog", "recovered.json", ("alert_cycle_key",)),
        (
            incidentio.normalise,
            "incidentio",
            "incident_updated_closed.json",
            ("public_incident.incident_updated_v2", "id"),
        ),
    ],
)
def test_a_lone_surrogate_in_vendor_text_is_accepted_repaired_or_invalid(
    normalise: Normaliser, source: str, name: str, path: tuple[str | int, ...]
) -> None:
    outcome = settled(normalise, with_surrogate(source, name, path, f"text {SURROGATE} around it"))
    if isinstance(outcome, Accepted):
        assert all(SURROGATE not in incident.model_dump_json() for incident in outcome.incidents)


def test_a_label_key_that_is_a_lone_surrogate_is_replaced() -> None:
    document = json.loads(fixture("alertmanager", "resolved_single.json"))
    document["alerts"][0]["labels"][SURROGATE] = "value"
    outcome = settled(alertmanager.normalise, json.dumps(document).encode())
    assert isinstance(outcome, Accepted)
    assert outcome.incidents[0].labels["?"] == "value"
