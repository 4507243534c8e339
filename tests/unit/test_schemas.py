from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import IncidentClosed, ReviewOpened, Severity, dead_letter_headers
from schemas.export import EXPORTED, drifted, render

RESOLVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_exported_json_schemas_match_the_models() -> None:
    assert drifted() == [], "run: python -m schemas.export"


def test_drift_is_detected(tmp_path: Path) -> None:
    for name, model in EXPORTED.items():
        (tmp_path / name).write_text(render(model))
    first = next(iter(EXPORTED))
    (tmp_path / first).write_text("{}")
    assert drifted(tmp_path) == [first]


def test_times_are_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    incident = IncidentClosed.create(
        source="generic",
        source_incident_id="1",
        resolved_at=datetime(2026, 11, 27, 11, 0, tzinfo=cet),
        title="t",
        severity=Severity.LOW,
    )
    assert incident.resolved_at == RESOLVED
    assert incident.resolved_at.utcoffset() == timedelta(0)


def test_event_id_does_not_depend_on_the_offset_a_vendor_used() -> None:
    cet = timezone(timedelta(hours=1))
    a = IncidentClosed.create(
        source="generic", source_incident_id="1", resolved_at=RESOLVED, title="t", severity=Severity.LOW
    )
    b = IncidentClosed.create(
        source="generic",
        source_incident_id="1",
        title="t",
        severity=Severity.LOW,
        resolved_at=datetime(2026, 11, 27, 11, 0, tzinfo=cet),
    )
    assert a.event_id == b.event_id


def test_our_events_are_strict_and_frozen() -> None:
    incident = IncidentClosed.create(
        source="generic", source_incident_id="1", resolved_at=RESOLVED, title="t", severity=Severity.LOW
    )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        IncidentClosed.model_validate({**incident.model_dump(), "surprise": 1})
    with pytest.raises(ValidationError, match="frozen"):
        incident.title = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"incident_key": "generic:2"}, "incident_key must be 'generic:1'"),
        ({"started_at": RESOLVED + timedelta(minutes=1)}, "started_at is after resolved_at"),
        ({"resolved_at": datetime(2026, 11, 27, 10, 0)}, "timezone"),  # noqa: DTZ001 - the naive time is the point
        ({"severity": "sev1"}, "severity"),
        ({"source": "nagios"}, "source"),
    ],
)
def test_incident_closed_rejects_inconsistent_events(change: dict[str, object], message: str) -> None:
    valid = IncidentClosed.create(
        source="generic", source_incident_id="1", resolved_at=RESOLVED, title="t", severity=Severity.LOW
    ).model_dump()
    with pytest.raises(ValidationError, match=message):
        IncidentClosed.model_validate({**valid, **change})


def test_create_refuses_a_naive_resolve_time() -> None:
    with pytest.raises(ValueError, match="time zone"):
        IncidentClosed.create(
            source="generic",
            source_incident_id="1",
            title="t",
            severity=Severity.LOW,
            resolved_at=datetime(2026, 11, 27, 10, 0),  # noqa: DTZ001 - the naive time is the point
        )


def test_review_opened_round_trips_through_json() -> None:
    event = ReviewOpened.model_validate_json(
        '{"schema_version": 1, "event_id": "5f0c7c1e-0000-4000-8000-000000000001",'
        ' "occurred_at": "2026-11-28T09:00:00Z",'
        ' "type": "ReviewOpened", "review_id": "r", "incident_key": "generic:1", "source": "generic", "title": "t",'
        ' "severity": "high", "status": "open", "incident_resolved_at": "2026-11-28T08:00:00+01:00"}'
    )
    assert ReviewOpened.model_validate_json(event.model_dump_json()) == event
    assert event.incident_resolved_at == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def test_dead_letter_headers_keep_the_original_and_cut_long_reasons() -> None:
    headers = dead_letter_headers(
        {"source": "generic", "dlq-reason": "spoofed"},
        reason="x" * 5_000,
        topic="incidents.raw",
        partition=2,
        offset=41,
        attempts=3,
        failed_at=RESOLVED,
        failed_by="ingest",
    )
    assert headers["source"] == "generic"
    assert headers["dlq-reason"] == "x" * 2_000
    assert headers["dlq-original-partition"] == "2"
    assert headers["dlq-original-offset"] == "41"
    assert headers["dlq-attempts"] == "3"
    assert headers["dlq-failed-at"] == "2026-11-27T10:00:00+00:00"


def test_text_that_cannot_travel_as_utf8_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="source_incident_id"):
        IncidentClosed.create(
            source="generic", source_incident_id="a\ud800", resolved_at=RESOLVED, title="t", severity=Severity.LOW
        )
    with pytest.raises(ValidationError, match="labels"):
        IncidentClosed.create(
            source="generic",
            source_incident_id="a",
            resolved_at=RESOLVED,
            title="t",
            severity=Severity.LOW,
            labels={"k": "\udfff"},
        )


def test_every_source_has_a_normaliser() -> None:
    from schemas import SOURCES
    from services.ingest.sources import NORMALISERS

    assert set(NORMALISERS) == set(SOURCES)


def test_a_time_without_a_utc_form_is_a_validation_error_not_a_crash() -> None:
    body = IncidentClosed.create(
        source="generic", source_incident_id="1", resolved_at=RESOLVED, title="t", severity=Severity.LOW
    ).model_dump(mode="json")
    body["resolved_at"] = "0001-01-01T00:00:00+00:01"
    with pytest.raises(ValidationError, match="out of range"):
        IncidentClosed.model_validate(body)
