"""Property: whatever any source accepts can be published, for every source.

Through ``sources.normalise`` (what ingest runs), each accepted incident serialises (``model_dump_json``) without
error, within ``NormalisationConfig.max_incident_bytes``, and reads back as the same event. Inputs are every source's
fixtures mutated towards what broke ingest before: lone surrogates, NUL characters (also in keys), times in years 1
and 9999, huge text and lists grown a thousandfold.
"""

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import SOURCES, IncidentClosed
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import normalise
from tests.support.fixtures import FIXTURES

FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
DEFAULT = NormalisationConfig()
# A small limit too, so that the guard itself is exercised by ordinary payloads.
SMALL = NormalisationConfig(max_incident_bytes=3_000)

HOSTILE: st.SearchStrategy[Any] = st.sampled_from(
    [
        "\ud800",
        "a\udfffb",
        "\u0000",
        "nul\u0000inside",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "1969-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
        "2024-05-16T10:00:00Z",
        "253402300799",
        "99999999999999999999",
        "\u0001" * 12_000,
        "é" * 30_000,
        10**20,
        -1,
        0,
        {"\u0000": "v", "\ud800": "w", "k": "\ud800"},
        [{"at": "2024-05-16T09:00:00Z", "kind": "note", "message": "\u0001" * 10_000, "actor": "a" * 300}] * 30,
    ]
)


def documents(source: str) -> dict[str, Any]:
    folder = FIXTURES / source
    return {path.name: json.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


DOCUMENTS = {source: documents(source) for source in SOURCES}
# Binary-mode CloudEvent fixtures need their ce_* headers; the structured ones carry everything in the body.
DOCUMENTS["cloudevents"] = {name: doc for name, doc in DOCUMENTS["cloudevents"].items() if "specversion" in doc}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def hostile(data: st.DataObject) -> Any:
    # A copy: a later mutation must not change the strategy's own values (Hypothesis replays them).
    return copy.deepcopy(data.draw(HOSTILE))


def mutate(document: Any, data: st.DataObject) -> None:
    """Replace a value with a hostile one, add a hostile key, or grow a list a thousandfold."""
    candidates = sorted(paths(document), key=len, reverse=True)
    if not candidates:
        return
    path = data.draw(st.sampled_from(candidates))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    operation = data.draw(st.sampled_from(["replace", "key", "grow"]))
    if operation == "replace":
        parent[key] = hostile(data)
    elif operation == "key" and isinstance(parent[key], dict):
        parent[key][data.draw(st.sampled_from(["\u0000", "a\u0000b", "\ud800", "$x", "k" * 5_000]))] = hostile(data)
    elif operation == "grow" and isinstance(parent[key], list) and parent[key]:
        parent[key] = parent[key] * 1_000


def check(outcome: Outcome, config: NormalisationConfig) -> None:
    assert isinstance(outcome, Accepted | Ignored | Invalid)
    if isinstance(outcome, Accepted):
        assert len(outcome.encoded) == len(outcome.incidents)
        for position, incident in enumerate(outcome.incidents):
            serialised = outcome.json_of(position)  # what ingest publishes
            assert serialised == incident.model_dump_json().encode()
            assert len(serialised) <= config.max_incident_bytes
            assert IncidentClosed.model_validate_json(serialised) == incident
            assert all("\x00" not in key for key in incident.labels)
    else:
        assert outcome.reason.strip()


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_what_a_source_accepts_can_be_published(source: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(DOCUMENTS[source])))
    document = json.loads(json.dumps(DOCUMENTS[source][name]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        mutate(document, data)
    body = json.dumps(document).encode()
    headers = {"source": source, "received-at": "2024-05-16T10:00:00+00:00"}
    for config in (DEFAULT, SMALL):
        check(normalise(RawIncident(body, headers), config), config)
