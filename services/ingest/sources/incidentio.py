"""incident.io webhooks: an incident whose status is in the ``learning`` or ``closed`` category is a closure.

incident.io nests the payload under a key named like the event type:
``{"event_type": "public_incident.incident_updated_v2", "public_incident.incident_updated_v2": <incident>}``. For the
created/updated events the value is the incident itself; for ``incident_status_updated_v2`` it is
``{"incident", "new_status", "previous_status"}``. Both shapes are read. Other event types (follow-ups, actions,
memberships, alerts) are ignored, and so are incidents in any other status category (triage, declined, merged,
canceled, live, paused) and test or tutorial incidents.

Private incidents' events carry only ``{"id"}`` (the rest needs an API call, and sources do no I/O), so they are
ignored with that reason; send a public event or use the generic form for private incidents.

- Resolution time: the incident's ``Resolved at`` timestamp (else ``Closed at``) from ``incident_timestamp_values``;
  without one, ``updated_at``. The named timestamp is preferred because it is stable: later edits in the learning
  phase re-send the incident, and a stable time gives the same event id, so they are recognised as duplicates.
- Start: the ``Impact started`` timestamp, else ``created_at``. Timeline: every timestamp the incident has.
- Severity: the severity's name (``Minor``/``Major``/``Critical`` unless the organisation renamed them).
- Service and team: the first value of a custom field named like "Affected services"/"Service" or "Affected
  teams"/"Team" (organisations name these themselves). Every custom field becomes a label, as do role assignments.
- Fingerprint: none; incidents here are declared by people and carry no de-duplication key.
"""

from datetime import datetime
from typing import Any

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels
from services.ingest.sources._reading import (
    PayloadError,
    as_object,
    first_text,
    map_payload,
    objects,
    quoted,
    required_object,
    required_text,
    text,
    texts,
)
from services.ingest.sources._times import iso_instant

SOURCE = "incidentio"
INCIDENT_EVENTS = frozenset(
    {
        "public_incident.incident_created_v2",
        "public_incident.incident_updated_v2",
        "public_incident.incident_status_updated_v2",
        "private_incident.incident_created_v2",
        "private_incident.incident_updated_v2",
    }
)
CLOSED_CATEGORIES = frozenset({"learning", "closed"})
NOT_REAL_MODES = frozenset({"test", "tutorial"})
RESOLVED_TIMESTAMPS = ("resolved at", "resolved", "closed at", "closed")
STARTED_TIMESTAMPS = ("impact started", "impact started at", "impact start")
SERVICE_FIELDS = frozenset({"affected services", "affected service", "services", "service", "impacted services"})
TEAM_FIELDS = frozenset({"affected teams", "affected team", "teams", "team", "owning team", "responsible team"})

# incident.io's default severities; organisations can rename or add them (override per deployment).
SEVERITIES: SeverityTable = {
    "Critical": Severity.CRITICAL,
    "Major": Severity.HIGH,
    "Minor": Severity.LOW,
}


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _name(value: str) -> str:
    return " ".join(value.lower().split())


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    event_type = required_text(payload.get("event_type"), "event_type")
    if event_type not in INCIDENT_EVENTS:
        return Ignored(f"event_type {quoted(event_type)} is not an incident created/updated event")
    body = required_object(payload.get(event_type), event_type)
    wrapped = body.get("incident")
    incident, path = (wrapped, f"{event_type}.incident") if isinstance(wrapped, dict) else (body, event_type)
    status = as_object(incident.get("incident_status")) or as_object(body.get("new_status"))
    if not status:
        if event_type.startswith("private_incident."):
            return Ignored("private incident events carry only the incident id; its status needs an API call")
        raise PayloadError(f"{path}.incident_status", "required, a JSON object")
    category = required_text(status.get("category"), f"{path}.incident_status.category")
    if category.lower() not in CLOSED_CATEGORIES:
        return Ignored(f"status category {quoted(category)} is not learning or closed")
    mode = text(incident.get("mode"))
    if mode is not None and mode.lower() in NOT_REAL_MODES:
        return Ignored(f"incident mode {quoted(mode)} is not a real incident")

    incident_id = required_text(incident.get("id"), f"{path}.id")
    title = required_text(incident.get("name"), f"{path}.name")
    timestamps = _timestamps(incident.get("incident_timestamp_values"))
    by_name = {_name(name): at for name, at in reversed(timestamps)}
    resolved_at = next((by_name[name] for name in RESOLVED_TIMESTAMPS if name in by_name), None)
    resolved_at = resolved_at or iso_instant(incident.get("updated_at"))
    if resolved_at is None:
        raise PayloadError(
            f"{path}.updated_at", "required (an ISO 8601 time with a UTC offset) when there is no Resolved at timestamp"
        )
    created_at = iso_instant(incident.get("created_at"))
    started_at = next((by_name[name] for name in STARTED_TIMESTAMPS if name in by_name), None) or created_at

    timeline = [timeline_entry(at, name) for name, at in timestamps]
    if not timeline:
        timeline.append(timeline_entry(resolved_at, text(status.get("name")) or category))
        if created_at is not None:
            timeline.append(timeline_entry(created_at, "reported"))
    fields = _custom_fields(incident.get("custom_field_entries"))
    severity_name = text(as_object(incident.get("severity")).get("name"))
    own, roles = _own_labels(incident, status, category, event_type)
    result = closed_incident(
        source=SOURCE,
        source_incident_id=incident_id,
        id_field=f"{path}.id",
        title=title,
        resolved_at=resolved_at,
        started_at=started_at,
        timeline=timeline,
        severity=config.severity(SOURCE, severity_name, SEVERITIES),
        source_severity=severity_name,
        service=_first_value(fields, SERVICE_FIELDS),
        team=_first_value(fields, TEAM_FIELDS),
        url=text(incident.get("permalink")),
        labels=bound_labels(own, {**roles, **{name: ",".join(values) for name, values in fields.items()}}),
        fingerprint=None,
    )
    return Accepted((result,))


def _timestamps(values: Any) -> list[tuple[str, datetime]]:
    """The incident's named timestamps that have a value, in the order given."""
    found = []
    for entry in objects(values):
        name = text(as_object(entry.get("incident_timestamp")).get("name"))
        value = entry.get("value")
        at = iso_instant(as_object(value).get("value") if isinstance(value, dict) else value)
        if name is not None and at is not None:
            found.append((name, at))
    return found


def _custom_fields(entries: Any) -> dict[str, list[str]]:
    """Custom field name -> its values as text (catalog entry names, option values, text, links, numbers)."""
    fields: dict[str, list[str]] = {}
    for entry in objects(entries):
        name = text(as_object(entry.get("custom_field")).get("name"))
        if name is None:
            continue
        values = texts(_value_text(value) for value in objects(entry.get("values")))
        if values:
            fields.setdefault(name, values)
    return fields


def _value_text(value: dict[str, Any]) -> str | None:
    return first_text(
        as_object(value.get("value_catalog_entry")).get("name"),
        as_object(value.get("value_option")).get("value"),
        value.get("value_text"),
        value.get("value_link"),
        value.get("value_numeric"),
        value.get("value_timestamp"),
    )


def _first_value(fields: dict[str, list[str]], names: frozenset[str]) -> str | None:
    return next((values[0] for name, values in fields.items() if _name(name) in names), None)


def _own_labels(
    incident: dict[str, Any], status: dict[str, Any], category: str, event_type: str
) -> tuple[dict[str, str | None], dict[str, str]]:
    """The labels this source derives, and the role assignments (``role:<role name>`` -> who)."""
    roles: dict[str, str] = {}
    lead = None
    for assignment in objects(incident.get("incident_role_assignments")):
        role = as_object(assignment.get("role"))
        assignee = as_object(assignment.get("assignee"))
        who = first_text(assignee.get("name"), assignee.get("email"))
        role_name = text(role.get("name"))
        if who is None or role_name is None:
            continue
        roles.setdefault(f"role:{role_name}", who)
        if text(role.get("role_type")) == "lead":
            lead = lead or who
    own: dict[str, str | None] = {
        "reference": text(incident.get("reference")),
        "status": text(status.get("name")),
        "status_category": category,
        "incident_type": text(as_object(incident.get("incident_type")).get("name")),
        "mode": text(incident.get("mode")),
        "visibility": text(incident.get("visibility")),
        "incident_lead": lead,
        "slack_channel": text(incident.get("slack_channel_name")),
        "postmortem_document_url": text(incident.get("postmortem_document_url")),
        "summary": text(incident.get("summary")),
        "event_type": event_type,
    }
    return own, roles
