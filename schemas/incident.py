"""``IncidentClosed`` v1: the one canonical shape every vendor's resolved incident becomes."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, get_args
from uuid import UUID, uuid5

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.base import Event, Text, utc_datetime

Source = Literal[
    "pagerduty",
    "opsgenie",
    "alertmanager",
    "grafana",
    "grafana-oncall",
    "datadog",
    "incidentio",
    "zabbix",
    "cloudevents",
    "generic",
]
SOURCES: tuple[str, ...] = get_args(Source)

# Fixed namespace so an incident's event id is the same on every replica and every redelivery.
INCIDENT_EVENT_NAMESPACE = UUID("4f6b1f0e-6f1c-4a5e-9a43-1f5d1c0b7e21")


# The instants an incident may carry: years 1970 to 2200. Earlier or later is a vendor's placeholder (Go's zero time,
# 9999-12-31) or a typo, never an incident; refusing it here keeps every consumer's arithmetic (due dates, reminders
# months later) and every store (BSON dates, Python's year 9999 ceiling) in range.
EARLIEST_INCIDENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INCIDENT_TIME = datetime(2200, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _within_incident_years(value: datetime) -> datetime:
    if not EARLIEST_INCIDENT_TIME <= value <= LATEST_INCIDENT_TIME:
        raise ValueError("time is outside the accepted years 1970 to 2200")
    return value


def _no_nul(value: str) -> str:
    # MongoDB refuses a field name containing NUL, and labels become field names downstream.
    if "\x00" in value:
        raise ValueError("label key contains a NUL character")
    return value


IncidentTime = Annotated[
    utc_datetime,
    AfterValidator(_within_incident_years),
    Field(description="UTC, between 1970-01-01T00:00:00Z and 2200-12-31T23:59:59.999999Z"),
]
LabelKey = Annotated[Text, AfterValidator(_no_nul)]


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"


class TimelineEntry(BaseModel):
    """One thing that happened during the incident, as the vendor reported it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: IncidentTime
    kind: Text = Field(min_length=1, max_length=200, description="e.g. triggered, acknowledged, note, resolved")
    message: Text = Field(default="", max_length=10_000)
    actor: Annotated[Text, Field(max_length=200)] | None = None


def incident_key_for(source: str, source_incident_id: str) -> str:
    return f"{source}:{source_incident_id}"


def incident_event_id(incident_key: str, resolved_at_iso: str) -> UUID:
    """Deterministic: the same closure always yields the same event id, so duplicates are recognisable."""
    name = f"{incident_key}|{resolved_at_iso}"
    # surrogatepass: a key that cannot be UTF-8 is refused by validation with its field named, not by the hash here.
    return uuid5(INCIDENT_EVENT_NAMESPACE, name.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


class IncidentClosed(Event):
    """An incident was resolved or closed in a paging or monitoring tool."""

    schema_version: Literal[1] = 1
    incident_key: Text = Field(min_length=3, description='"<source>:<source_incident_id>", the de-duplication key')
    source: Source
    source_incident_id: Text = Field(min_length=1, max_length=500)
    title: Text = Field(min_length=1, max_length=2_000)
    severity: Severity
    source_severity: Text | None = Field(default=None, description="The severity or priority as the vendor said it")
    service: Text | None = None
    team: Text | None = None
    started_at: IncidentTime | None = None
    resolved_at: IncidentTime
    url: Text | None = None
    labels: dict[LabelKey, Text] = Field(default_factory=dict, description="Label keys never contain NUL")
    fingerprint: Text | None = Field(default=None, description="What recurs when the same problem recurs")
    timeline: tuple[TimelineEntry, ...] = ()

    @model_validator(mode="after")
    def _key_matches_source(self) -> "IncidentClosed":
        expected = incident_key_for(self.source, self.source_incident_id)
        if self.incident_key != expected:
            raise ValueError(f"incident_key must be {expected!r}, got {self.incident_key!r}")
        if self.started_at is not None and self.started_at > self.resolved_at:
            raise ValueError("started_at is after resolved_at")
        return self

    @classmethod
    def create(
        cls, *, source: str, source_incident_id: str, resolved_at: datetime, **fields: object
    ) -> "IncidentClosed":
        """Build the event with its derived fields (key, id, occurred_at) filled in consistently.

        ``resolved_at`` must be offset-aware; the event id is derived from its UTC form.
        """
        key = incident_key_for(source, source_incident_id)
        if resolved_at.tzinfo is None:
            raise ValueError("resolved_at must carry a time zone")
        try:
            resolved_iso = resolved_at.astimezone(UTC).isoformat()
        except OverflowError:  # no UTC form: validation refuses resolved_at below, naming it
            resolved_iso = resolved_at.isoformat()
        return cls.model_validate(
            {
                "event_id": incident_event_id(key, resolved_iso),
                "occurred_at": resolved_at,
                "incident_key": key,
                "source": source,
                "source_incident_id": source_incident_id,
                "resolved_at": resolved_at,
                **fields,
            }
        )
