"""PagerDuty Webhooks V3: ``incident.resolved`` is a closure; every other event type is ignored.

One webhook carries one event (``{"event": {"event_type", "occurred_at", "agent", "data": <incident>}}``), and for
incident events ``event.data`` is the incident itself. The incident is resolved when the event occurred, so
``event.occurred_at`` is the resolution time and ``data.created_at`` the start.

- Severity: the incident priority's summary (``P1``..``P5``, or whatever the account named its priorities), falling
  back to the urgency (``high``/``low``) when there is no priority or it is not in any table. ``source_severity`` is
  the value used.
- Fingerprint: the incident's de-duplication key (``incident_key``), else the service and title.
- An incident resolved by being merged into another (``resolve_reason.type == "merge_resolve_reason"``) is ignored:
  the incident it was merged into is the one to review.
- V3 webhooks carry no log entries, so the timeline is the trigger (``created_at``) and the resolution itself.
"""

from typing import Any

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, label_text
from services.ingest.sources._reading import (
    PayloadError,
    as_list,
    as_object,
    first_text,
    map_payload,
    quoted,
    required_object,
    required_text,
    text,
    texts,
)
from services.ingest.sources._times import iso_instant

SOURCE = "pagerduty"
CLOSURE_EVENT = "incident.resolved"

# PagerDuty's default priority scheme and its two urgencies.
SEVERITIES: SeverityTable = {
    "P1": Severity.CRITICAL,
    "P2": Severity.HIGH,
    "P3": Severity.MEDIUM,
    "P4": Severity.LOW,
    "P5": Severity.LOW,
    "high": Severity.HIGH,
    "low": Severity.LOW,
}


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    event = required_object(payload.get("event"), "event")
    event_type = required_text(event.get("event_type"), "event.event_type")
    if event_type != CLOSURE_EVENT:
        return Ignored(f"event_type {quoted(event_type)} is not {CLOSURE_EVENT}")
    data = required_object(event.get("data"), "event.data")
    merged_into = _merged_into(data.get("resolve_reason"))
    if merged_into is not None:
        return Ignored(f"incident was resolved by merging it into {merged_into}")

    incident_id = required_text(data.get("id"), "event.data.id")
    title = required_text(data.get("title"), "event.data.title")
    resolved_at = iso_instant(event.get("occurred_at"))
    if resolved_at is None:
        raise PayloadError("event.occurred_at", "required, an ISO 8601 time with a UTC offset")
    started_at = iso_instant(data.get("created_at"))

    priority = text(as_object(data.get("priority")).get("summary"))
    urgency = text(data.get("urgency"))
    severity = config.severity(SOURCE, priority, SEVERITIES)
    if severity is Severity.UNKNOWN and urgency is not None:
        severity = config.severity(SOURCE, urgency, SEVERITIES)
    service = text(as_object(data.get("service")).get("summary"))
    teams = texts(as_object(team).get("summary") for team in as_list(data.get("teams")))
    incident_key = text(data.get("incident_key"))
    actor = text(as_object(event.get("agent")).get("summary"))

    timeline = [timeline_entry(resolved_at, "resolved", actor=actor)]
    if started_at is not None:
        timeline.append(timeline_entry(started_at, "triggered", title))
    incident = closed_incident(
        source=SOURCE,
        source_incident_id=incident_id,
        id_field="event.data.id",
        title=title,
        resolved_at=resolved_at,
        started_at=started_at,
        timeline=timeline,
        severity=severity,
        source_severity=priority or urgency,
        service=service,
        team=teams[0] if teams else None,
        url=text(data.get("html_url")),
        labels=_labels(event, data, priority, urgency, teams),
        fingerprint=incident_key or (f"{service}|{title}" if service else title),
    )
    return Accepted((incident,))


def _merged_into(resolve_reason: Any) -> str | None:
    reason = as_object(resolve_reason)
    if text(reason.get("type")) != "merge_resolve_reason":
        return None
    target = as_object(reason.get("incident"))
    return first_text(target.get("id"), target.get("summary")) or "another incident"


def _labels(
    event: dict[str, Any], data: dict[str, Any], priority: str | None, urgency: str | None, teams: list[str]
) -> dict[str, str]:
    own = {
        "incident_number": label_text(data.get("number")),
        "priority": priority,
        "urgency": urgency,
        "status": text(data.get("status")),
        "service_id": text(as_object(data.get("service")).get("id")),
        "escalation_policy": text(as_object(data.get("escalation_policy")).get("summary")),
        "incident_type": text(as_object(data.get("incident_type")).get("name")),
        "teams": ",".join(teams) or None,
        "resolved_by": text(as_object(event.get("agent")).get("summary")),
        "webhook_event_id": text(event.get("id")),
    }
    return bound_labels(own)
