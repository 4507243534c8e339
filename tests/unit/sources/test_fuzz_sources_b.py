"""Whatever arrives, the alertmanager, grafana, grafana-oncall and zabbix sources end in an outcome, never a crash."""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas import IncidentClosed
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import alertmanager, grafana, grafana_oncall, zabbix
from services.ingest.sources._labels import MAX_LABEL_VALUE, MAX_LABELS
from tests.support.fixtures import FIXTURES

Normaliser = Callable[[RawIncident, NormalisationConfig], Outcome]
SOURCES: dict[str, Normaliser] = {
    "alertmanager": alertmanager.normalise,
    "grafana": grafana.normalise,
    "grafana-oncall": grafana_oncall.normalise,
    "zabbix": zabbix.normalise,
}
CONFIG = NormalisationConfig(zabbix_timezone=ZoneInfo("Europe/Berlin"))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that steer random documents into the interesting branches (statuses, event types, zero and odd times), and
# a lone surrogate, which JSON can escape but UTF-8 cannot carry (Hypothesis's text never generates one).
MEANINGFUL = st.sampled_from(
    [
        "resolved",
        "firing",
        "resolve",
        "acknowledge",
        "0",
        "1",
        "4",
        "RESOLVED",
        "PROBLEM",
        "{EVENT.ID}",
        "*UNKNOWN*",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+02:00",
        "9999-12-31T23:59:59-05:00",
        "2024-05-16T10:00:00Z",
        "2024-05-16T10:00:00",
        "2024.05.16",
        "2024.13.45",
        "25:61:61",
        "12:34:56",
        "99999999999",
        "",
        " ",
        "[]",
        '[{"tag": "service"}]',
        "\u0000",
        "\ud800",
        "é" * 3000,
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40) | MEANINGFUL
KEYS = st.sampled_from(
    [
        "alerts",
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "fingerprint",
        "generatorURL",
        "version",
        "truncatedAlerts",
        "orgId",
        "panelURL",
        "dashboardURL",
        "values",
        "valueString",
        "imageURL",
        "event",
        "type",
        "time",
        "alert_group",
        "id",
        "alert_group_id",
        "created_at",
        "resolved_at",
        "acknowledged_at",
        "title",
        "permalinks",
        "alert_payload",
        "integration",
        "user",
        "event_id",
        "event_value",
        "event_status",
        "event_update_status",
        "event_source",
        "event_date",
        "event_time",
        "event_timestamp",
        "event_recovery_date",
        "event_recovery_time",
        "event_recovery_timestamp",
        "event_tags",
        "event_severity",
        "event_nseverity",
        "trigger_id",
        "host_name",
        "zabbix_url",
        "severity",
        "service",
        "team",
    ]
) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=12,
)
HEADERS = st.dictionaries(st.sampled_from(["received-at", "source", "content-type"]), st.text(max_size=40) | MEANINGFUL)


def _fixtures(source: str) -> list[Any]:
    return [json.loads(path.read_bytes()) for path in sorted((FIXTURES / source).glob("*.json"))]


FIXTURE_DOCUMENTS = {source: _fixtures(source) for source in SOURCES}


def _retyped(value: Any) -> Any:
    """The same content in another JSON type, the way vendors surprise."""
    if isinstance(value, str):
        return int(value) if value.isdigit() and len(value) < 18 else [value]
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return "null"


def _mutate(data: st.DataObject, node: Any) -> Any:
    """One change somewhere in the document: walk down at random, then delete, replace, retype or add."""
    if isinstance(node, dict | list) and node and data.draw(st.booleans(), label="descend"):
        where = (
            data.draw(st.sampled_from(sorted(node)), label="into key")
            if isinstance(node, dict)
            else data.draw(st.integers(0, len(node) - 1), label="into index")
        )
        node[where] = _mutate(data, node[where])
        return node
    action = data.draw(st.sampled_from(["delete", "replace", "retype", "add"]), label="action")
    if action == "delete" and isinstance(node, dict | list) and node:
        where = (
            data.draw(st.sampled_from(sorted(node)), label="delete key")
            if isinstance(node, dict)
            else data.draw(st.integers(0, len(node) - 1), label="delete index")
        )
        del node[where]
    elif action == "add" and isinstance(node, dict):
        node[data.draw(KEYS, label="add key")] = data.draw(JSON, label="add value")
    elif action == "retype":
        node = _retyped(node)
    else:
        node = data.draw(JSON, label="replacement")
    return node


def check(source: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    outcome = SOURCES[source](RawIncident(body, headers or {}), CONFIG)
    assert isinstance(outcome, Accepted | Ignored | Invalid)
    event(type(outcome).__name__)
    if isinstance(outcome, Ignored | Invalid):
        assert isinstance(outcome.reason, str)
        assert outcome.reason.strip()
        return
    assert outcome.incidents
    for incident in outcome.incidents:
        assert isinstance(incident, IncidentClosed)
        assert incident.source == source
        assert len(incident.labels) <= MAX_LABELS
        assert all(len(value) <= MAX_LABEL_VALUE for value in incident.labels.values())
        # What we emit must survive the trip through Kafka.
        assert IncidentClosed.model_validate_json(incident.model_dump_json()) == incident


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(body=st.binary(max_size=2_000))
def test_random_bytes(source: str, body: bytes) -> None:
    check(source, body)


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(document=JSON | st.dictionaries(KEYS, JSON, max_size=10), headers=HEADERS)
def test_random_json(source: str, document: Any, headers: dict[str, str]) -> None:
    check(source, json.dumps(document).encode(), headers)


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(data=st.data(), headers=HEADERS)
def test_mutated_fixtures(source: str, data: st.DataObject, headers: dict[str, str]) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(FIXTURE_DOCUMENTS[source]), label="fixture"))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        document = _mutate(data, document)
    check(source, json.dumps(document).encode(), headers)


def test_every_source_has_fixtures() -> None:
    for source in SOURCES:
        assert FIXTURE_DOCUMENTS[source], source
        assert Path(FIXTURES / source / "README.md").is_file()
