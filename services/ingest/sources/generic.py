"""The generic JSON form, for tools without an adapter of their own (see ARCHITECTURE.md).

Strict: text the contract refuses makes the payload invalid rather than being repaired. The timeline is bounded like
every source's (``_incident.bounded_timeline``).
"""

from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas import IncidentClosed, TimelineEntry, validation_summary
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.sources._incident import bounded_timeline
from services.ingest.sources._reading import json_object

CLOSED_STATUSES = frozenset({"resolved", "closed"})


class _TimelineItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    at: AwareDatetime
    kind: str = Field(min_length=1)
    message: str = ""
    actor: str | None = None


class GenericForm(BaseModel):
    """Lenient on extra fields; strict on what the contract requires."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    status: str = Field(min_length=1)
    severity: str | None = None
    service: str | None = None
    team: str | None = None
    started_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    url: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = None
    timeline: list[_TimelineItem] = Field(default_factory=list)

    @field_validator("labels", mode="before")
    @classmethod
    def _scalar_labels_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else _label_text(v) for k, v in value.items()}
        return value


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _timeline(items: list[_TimelineItem]) -> list[TimelineEntry] | Invalid:
    """The form's entries as the contract's, or why one of them (named by its index) breaks it."""
    entries = []
    for index, item in enumerate(items):
        try:
            entries.append(TimelineEntry(at=item.at, kind=item.kind, message=item.message, actor=item.actor))
        except ValidationError as exc:
            return Invalid(f"timeline.{index}: {validation_summary(exc)}")
    return entries


def parse_form(
    payload: dict[str, Any], source: str, config: NormalisationConfig, provenance: Mapping[str, str] | None = None
) -> Outcome:
    """Map a generic form (already decoded) to an outcome; CloudEvents reuse this for their ``data``.

    ``provenance`` labels (the CloudEvent envelope's) join the form's own, overriding them, and are validated with
    the rest of the incident.
    """
    try:
        form = GenericForm.model_validate(payload)
    except ValidationError as exc:
        return Invalid(validation_summary(exc))
    status = form.status.lower()
    if status not in CLOSED_STATUSES:
        return Ignored(f"status {form.status!r} is not resolved or closed")
    if form.resolved_at is None:
        return Invalid("resolved_at: required when status is resolved or closed")
    timeline = _timeline(form.timeline)
    if isinstance(timeline, Invalid):
        return timeline
    try:
        incident = IncidentClosed.create(
            source=source,
            source_incident_id=form.id,
            resolved_at=form.resolved_at,
            title=form.title,
            severity=config.severity(source, form.severity),
            source_severity=form.severity,
            service=form.service,
            team=form.team,
            started_at=form.started_at,
            url=form.url,
            labels={**form.labels, **(provenance or {})},
            fingerprint=form.fingerprint,
            timeline=bounded_timeline(timeline),
        )
    except ValidationError as exc:
        return Invalid(validation_summary(exc))
    return Accepted((incident,))


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    payload = json_object(raw.body)
    if isinstance(payload, Invalid):
        return payload
    return parse_form(payload, "generic", config)
