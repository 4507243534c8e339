"""Property tests: the pagerduty, opsgenie, incidentio and datadog sources never raise, whatever they are given.

Every input ends as ``Accepted`` (with events that serialise and respect the label bounds), ``Ignored`` or ``Invalid``
with a reason. Inputs: random bytes, random JSON objects keyed mostly with the vendor's own field names (so they get
past the first checks), and every fixture mutated by deleting keys, replacing values and changing their types.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import IncidentClosed
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources import datadog, incidentio, opsgenie, pagerduty
from services.ingest.sources._labels import MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS
from tests.support.fixtures import FIXTURES

NORMALISERS: dict[str, Callable[[RawIncident, NormalisationConfig], Outcome]] = {
    "pagerduty": pagerduty.normalise,
    "opsgenie": opsgenie.normalise,
    "incidentio": incidentio.normalise,
    "datadog": datadog.normalise,
}
CONFIG = NormalisationConfig()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that tend to break parsers: empty and blank text, unsubstituted template variables, epoch edge cases,
# huge and non-finite numbers, lone surrogates, offset-less and far-future times.
TRICKY: st.SearchStrategy[Any] = st.sampled_from(
    [
        "",
        "   ",
        "$ALERT_ID",
        "0",
        "-1",
        "1e400",
        "NaN",
        "\ud800",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2024-01-01T00:00:00",
        0,
        -1,
        10**25,
        2**63,
        1.5e300,
        float("inf"),
        float("nan"),
        True,
        None,
        [],
        {},
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | TRICKY


def fixture_documents(source: str) -> dict[str, Any]:
    return {path.name: json.loads(path.read_bytes()) for path in sorted((FIXTURES / source).glob("*.json"))}


def vocabulary(value: Any) -> set[str]:
    """Every object key in the fixtures, so random documents use the vendor's own words."""
    if isinstance(value, dict):
        return set(value).union(*(vocabulary(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(vocabulary(item) for item in value))
    return set()


DOCUMENTS = {source: fixture_documents(source) for source in NORMALISERS}
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=8,
)


def vendor_documents(source: str) -> st.SearchStrategy[Any]:
    """Objects three levels deep whose keys are mostly the vendor's own (deeper shapes come from the mutations)."""
    keys = st.sampled_from(sorted(vocabulary(list(DOCUMENTS[source].values())))) | st.text(max_size=8)
    leaves = SCALARS | st.lists(SCALARS, max_size=3)
    values = leaves | st.dictionaries(keys, leaves | st.dictionaries(keys, leaves, max_size=4), max_size=5)
    return st.dictionaries(keys, values, max_size=8)


# Strategies are built once: building them for every example costs more than running the sources.
VENDOR_DOCUMENTS = {source: vendor_documents(source) for source in NORMALISERS}


def check(source: str, outcome: Outcome) -> None:
    assert isinstance(outcome, Accepted | Ignored | Invalid)
    if isinstance(outcome, Accepted):
        assert outcome.incidents
        for incident in outcome.incidents:
            assert incident.source == source
            assert len(incident.labels) <= MAX_LABELS
            assert all(len(key) <= MAX_LABEL_KEY for key in incident.labels)
            assert all(len(value) <= MAX_LABEL_VALUE for value in incident.labels.values())
            assert incident.resolved_at.utcoffset() is not None
            assert IncidentClosed.model_validate_json(incident.model_dump_json()) == incident
    else:
        assert outcome.reason.strip()


def run(source: str, body: bytes) -> Outcome:
    return NORMALISERS[source](RawIncident(body, {"source": source}), CONFIG)


@pytest.mark.parametrize("source", NORMALISERS)
@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes(source: str, body: bytes) -> None:
    check(source, run(source, body))


@pytest.mark.parametrize("source", NORMALISERS)
@FUZZ
@given(data=st.data())
def test_random_json(source: str, data: st.DataObject) -> None:
    document = data.draw(VENDOR_DOCUMENTS[source])
    check(source, run(source, json.dumps(document).encode()))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def pick_path(data: st.DataObject, document: Any) -> tuple[Any, ...]:
    """A random path, deepest first: Hypothesis favours the front of a list, and the fields that matter sit under
    the vendor's envelope (``event.data``, ``alert``...), where a mutation does not just make the payload invalid."""
    candidates = sorted(paths(document), key=len, reverse=True)
    return data.draw(st.sampled_from(candidates)) if candidates else ()


def other_type(value: Any, data: st.DataObject) -> Any:
    """The same information, or a stand-in, as another JSON type."""
    choices: list[Any] = [
        str(value),
        [value],
        {"value": value},
        None,
        len(value) if isinstance(value, str | list | dict) else 1,
        not value,
    ]
    return data.draw(st.sampled_from([choice for choice in choices if type(choice) is not type(value)]))


def mutate(document: Any, data: st.DataObject) -> Any:
    path = pick_path(data, document)
    if not path:
        return data.draw(JSON_VALUES)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    operation = data.draw(st.sampled_from(["delete", "replace", "retype"]))
    if operation == "delete":
        del parent[key]
    elif operation == "replace":
        parent[key] = data.draw(JSON_VALUES)
    else:
        parent[key] = other_type(parent[key], data)
    return document


@pytest.mark.parametrize("source", NORMALISERS)
@FUZZ
@given(data=st.data())
def test_mutated_fixtures(source: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(DOCUMENTS[source])))
    document = json.loads(json.dumps(DOCUMENTS[source][name]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        document = mutate(document, data)
    check(source, run(source, json.dumps(document).encode()))


@pytest.mark.parametrize("source", NORMALISERS)
def test_every_fixture_gives_an_outcome(source: str) -> None:
    for document in DOCUMENTS[source].values():
        check(source, run(source, json.dumps(document).encode()))
