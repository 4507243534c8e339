"""Input shaped by an attacker (or a broken tool) is refused at normalisation, never published to fail later.

Each case once got through ingest and broke downstream: text that cannot be serialised (the Kafka publish raised and
stalled the partition), an incident larger than Kafka's record limit, a label key MongoDB refuses, a time that
overflows once converted to UTC or that review cannot store.
"""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import IncidentClosed, Severity
from services.ingest.domain.config import DEFAULT_MAX_INCIDENT_BYTES, NormalisationConfig
from services.ingest.domain.outcome import Accepted, Invalid, Outcome, RawIncident
from services.ingest.sources import normalise
from services.ingest.sources._incident import MAX_TIMELINE_ENTRIES, TIMELINE_OMITTED
from tests.support.fixtures import fixture

CONFIG = NormalisationConfig()
SURROGATE = "\ud800"


def form(**fields: Any) -> dict[str, Any]:
    return {"id": "INC-1", "title": "Checkout down", "status": "resolved", "resolved_at": "2024-05-16T10:00:00Z"} | (
        fields
    )


def run(source: str, document: Any, config: NormalisationConfig = CONFIG) -> Outcome:
    return normalise(RawIncident(json.dumps(document).encode(), {"source": source}), config)


def invalid_reason(outcome: Outcome) -> str:
    assert isinstance(outcome, Invalid), outcome
    return outcome.reason


def cloudevent(**attributes: Any) -> dict[str, Any]:
    envelope = {"specversion": "1.0", "id": "evt-1", "source": "/monitoring", "type": "incident.resolved"}
    return envelope | attributes | {"data": form()}


# --- 1. nothing skips validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["source", "type"])
def test_a_cloudevent_attribute_with_a_lone_surrogate_is_invalid_not_a_publish_failure(attribute: str) -> None:
    reason = invalid_reason(run("cloudevents", cloudevent(**{attribute: f"/x{SURROGATE}"})))
    assert f"labels.ce_{attribute}" in reason
    assert "surrogate" in reason


def test_cloudevent_provenance_is_still_kept_and_bounded() -> None:
    outcome = run("cloudevents", cloudevent(source="/" + "s" * 5_000))
    assert isinstance(outcome, Accepted)
    (incident,) = outcome.incidents
    assert incident.labels["ce_type"] == "incident.resolved"
    assert len(incident.labels["ce_source"]) == 1_000
    incident.model_dump_json()


# --- 2. bounded size -------------------------------------------------------------------------------------------------


def tiny_entries(count: int) -> list[dict[str, str]]:
    # Short times and no message or actor: each entry grows by half once normalised.
    times = (f"2024-05-16T{i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(count))
    return [{"at": at, "kind": "k"} for at in times]


def test_a_megabyte_timeline_is_cut_to_its_earliest_and_latest_entries_saying_how_many_were_left_out() -> None:
    entries = tiny_entries(24_000)
    body = json.dumps(form(timeline=entries, resolved_at="2024-05-16T12:00:00Z")).encode()
    assert len(body) > 1_000_000
    outcome = normalise(RawIncident(body, {"source": "generic"}), CONFIG)
    assert isinstance(outcome, Accepted), outcome
    (incident,) = outcome.incidents
    assert len(incident.timeline) == MAX_TIMELINE_ENTRIES
    omitted = [entry for entry in incident.timeline if entry.kind == TIMELINE_OMITTED]
    assert len(omitted) == 1
    assert omitted[0].message.startswith(f"{24_000 - MAX_TIMELINE_ENTRIES + 1} entries left out")
    assert incident.timeline[0].at == datetime(2024, 5, 16, tzinfo=UTC)
    assert incident.timeline[-1].at == max(entry.at for entry in incident.timeline)
    assert [entry.at for entry in incident.timeline] == sorted(entry.at for entry in incident.timeline)
    assert len(incident.model_dump_json().encode()) < DEFAULT_MAX_INCIDENT_BYTES


def test_an_incident_larger_than_the_limit_is_invalid_naming_its_size_and_the_limit() -> None:
    entries = [{"at": "2024-05-16T09:00:00Z", "kind": "note", "message": "\u0001" * 10_000} for _ in range(20)]
    reason = invalid_reason(run("generic", form(timeline=entries)))
    assert f"over the {DEFAULT_MAX_INCIDENT_BYTES}-byte limit" in reason
    assert "'generic:INC-1' is 1" in reason  # 20 entries of 10,000 six-byte escapes: over a megabyte


def test_the_size_limit_is_configurable_and_applies_to_every_source() -> None:
    small = NormalisationConfig(max_incident_bytes=300)
    reason = invalid_reason(
        normalise(RawIncident(fixture("pagerduty", "resolved.json"), {"source": "pagerduty"}), small)
    )
    assert "over the 300-byte limit" in reason


def test_an_actor_longer_than_the_contract_allows_is_invalid() -> None:
    entries = [{"at": "2024-05-16T09:00:00Z", "kind": "note", "actor": "a" * 201}]
    assert "timeline.0: actor" in invalid_reason(run("generic", form(timeline=entries)))


# --- 4. what MongoDB and review cannot store -------------------------------------------------------------------------


def test_a_nul_in_a_generic_label_key_is_invalid() -> None:
    reason = invalid_reason(run("generic", form(labels={"env\u0000x": "prod"})))
    assert "label key contains a NUL character" in reason


def test_a_nul_in_a_vendor_label_key_is_replaced_like_a_lone_surrogate() -> None:
    document = json.loads(fixture("alertmanager", "resolved_single.json"))
    document["alerts"][0]["labels"]["a\u0000b"] = "value"
    outcome = run("alertmanager", document)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.incidents[0].labels["a?b"] == "value"


def test_the_contract_refuses_a_nul_in_a_label_key() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        IncidentClosed.create(
            source="generic",
            source_incident_id="1",
            resolved_at=datetime(2024, 5, 16, tzinfo=UTC),
            title="t",
            severity=Severity.LOW,
            labels={"\u0000": "v"},
        )


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+01:00",  # no UTC form: overflowed inside IncidentClosed.create
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
    ],
)
def test_a_resolve_time_outside_the_accepted_years_is_invalid(when: str) -> None:
    reason = invalid_reason(run("generic", form(resolved_at=when)))
    assert "resolved_at" in reason
    assert "out of range" in reason or "outside the accepted years 1970 to 2200" in reason


@pytest.mark.parametrize("field", ["started_at", "timeline"])
def test_other_times_outside_the_accepted_years_are_invalid_in_the_generic_form(field: str) -> None:
    far = "2500-01-01T00:00:00Z"
    value: Any = far if field == "started_at" else [{"at": far, "kind": "note"}]
    reason = invalid_reason(run("generic", form(**{field: value})))
    assert "outside the accepted years 1970 to 2200" in reason


def test_the_edges_of_the_accepted_years_are_accepted() -> None:
    early = run("generic", form(resolved_at="1970-01-01T00:00:00Z"))
    late = run("generic", form(resolved_at="2200-12-31T23:59:59.999999Z", started_at="1970-01-01T00:00:00Z"))
    assert isinstance(early, Accepted), early
    assert isinstance(late, Accepted), late


def test_a_vendor_resolve_time_in_year_9999_is_invalid_naming_the_field() -> None:
    document = json.loads(fixture("grafana-oncall", "resolved.json"))
    document["alert_group"]["resolved_at"] = "9999-12-31T23:59:59Z"
    reason = invalid_reason(run("grafana-oncall", document))
    assert reason == "alert_group.resolved_at: time is outside the accepted years 1970 to 2200"


def test_a_vendor_start_in_year_9999_is_left_out_rather_than_losing_the_closure() -> None:
    document = json.loads(fixture("pagerduty", "resolved.json"))
    document["event"]["data"]["created_at"] = "9999-12-31T23:59:59-01:00"
    outcome = run("pagerduty", document)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.incidents[0].started_at is None


def test_a_zabbix_local_time_in_year_2300_is_invalid() -> None:
    document = json.loads(fixture("zabbix", "recovery.json"))
    for name in [key for key in document if key.endswith("_timestamp")]:
        del document[name]
    document["event_recovery_date"] = "2300.01.01"
    reason = invalid_reason(run("zabbix", document))
    assert reason == "event_recovery_date: time is outside the accepted years 1970 to 2200"


def test_an_epoch_far_in_the_future_is_not_a_time() -> None:
    document = json.loads(fixture("datadog", "recovered.json"))
    document["date"] = str(10**20)  # nanoseconds: year 5138
    document.pop("last_updated", None)
    reason = invalid_reason(run("datadog", document))
    assert "date" in reason
