"""Grafana OnCall / IRM outgoing webhook, sent with "Forward whole payload": a resolved alert group is one incident.

Only the ``resolve`` event closes an alert group (a "Status change" webhook reports the original action's type, so it
is covered too); ``alert group created``, ``acknowledge``, ``silence``, ``escalation``, ``unresolve`` and the others
are not closures. Webhooks with a custom Data template send whatever the template makes and cannot be read here.
"""

from datetime import datetime
from typing import Any

from schemas import IncidentClosed, TimelineEntry
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, object_labels
from services.ingest.sources._reading import PayloadError, as_object, first_text, map_payload, quoted, text, truncate
from services.ingest.sources._times import iso_instant, required_iso_instant

SOURCE = "grafana-oncall"
CLOSING_EVENT = "resolve"
PREFERRED_LABELS = ("alertname", "severity", "service", "team", "urgency")


def _actor(*users: Any) -> str | None:
    return first_text(*(as_object(user).get(key) for user in users for key in ("username", "email")))


def _severity(alert_payload: dict[str, Any], group_labels: dict[str, str]) -> str | None:
    """The severity the alert source gave: Alertmanager/Grafana labels, a webhook's own field, or group labels."""
    payload_labels = as_object(alert_payload.get("labels"))
    common_labels = as_object(alert_payload.get("commonLabels"))
    return first_text(
        payload_labels.get("severity"),
        common_labels.get("severity"),
        alert_payload.get("severity"),
        group_labels.get("severity"),
    )


def _fingerprint(alert_payload: dict[str, Any], group: dict[str, Any], title: str | None) -> str | None:
    """What recurs: the alert source's own fingerprint or group key, else the integration plus the group's title.

    OnCall groups alerts by a grouping key it does not send, so the fallback is a heuristic: the same integration
    raising an alert group with the same (templated) title is taken as the same problem.
    """
    given = first_text(alert_payload.get("fingerprint"), alert_payload.get("groupKey"), alert_payload.get("alert_uid"))
    if given is not None:
        return given
    integration_id = text(group.get("integration_id"))
    if integration_id and title:
        return truncate(f"{integration_id}:{title}", 1_000)
    return None


def _timeline(
    group: dict[str, Any], payload: dict[str, Any], started_at: datetime | None, resolved_at: datetime, title: str
) -> list[TimelineEntry]:
    entries = []
    if started_at is not None:
        entries.append(timeline_entry(started_at, "triggered", title))
    acknowledged_at = iso_instant(group.get("acknowledged_at"))
    if acknowledged_at is not None and (started_at is None or acknowledged_at >= started_at):
        acknowledged_at = min(acknowledged_at, resolved_at)
        entries.append(
            timeline_entry(acknowledged_at, "acknowledged", actor=_actor(payload.get("alert_group_acknowledged_by")))
        )
    entries.append(
        timeline_entry(
            resolved_at, "resolved", actor=_actor(payload.get("alert_group_resolved_by"), payload.get("user"))
        )
    )
    return entries


def _resolved_group(payload: dict[str, Any], config: NormalisationConfig) -> IncidentClosed:
    group = as_object(payload.get("alert_group"))
    group_id = first_text(group.get("id"), payload.get("alert_group_id"))
    if group_id is None:
        raise PayloadError("alert_group.id", "required (and no alert_group_id)")
    event = as_object(payload.get("event"))
    if group.get("resolved_at") not in (None, ""):
        resolved_at = required_iso_instant(group.get("resolved_at"), "alert_group.resolved_at")
    else:
        resolved_at = required_iso_instant(event.get("time"), "alert_group.resolved_at (or event.time)")
    started_at = iso_instant(group.get("created_at"))
    if started_at is not None and started_at > resolved_at:
        raise PayloadError("alert_group.created_at", "after alert_group.resolved_at")
    alert_payload = as_object(payload.get("alert_payload"))
    integration = as_object(payload.get("integration"))
    group_labels = object_labels(group.get("labels"))
    payload_labels = object_labels(alert_payload.get("labels"))
    title = first_text(
        group.get("title"),
        as_object(alert_payload.get("annotations")).get("summary"),
        payload_labels.get("alertname"),
        alert_payload.get("title"),
    )
    severity = _severity(alert_payload, group_labels)
    provenance = {
        "oncall_integration": text(integration.get("name")),
        "oncall_integration_type": text(integration.get("type")),
        "oncall_alerts_count": text(group.get("alerts_count")),
    }
    shown_title = title or f"Alert group {group_id}"
    return closed_incident(
        source=SOURCE,
        source_incident_id=group_id,
        id_field="alert_group.id",
        resolved_at=resolved_at,
        title=shown_title,
        severity=config.severity(SOURCE, severity),
        source_severity=severity,
        service=first_text(group_labels.get("service"), payload_labels.get("service"), payload_labels.get("job")),
        team=first_text(integration.get("team"), group_labels.get("team"), payload_labels.get("team")),
        started_at=started_at,
        url=text(as_object(group.get("permalinks")).get("web")),
        # The group's labels win over the first alert's labels: OnCall derives them deliberately.
        labels=bound_labels(provenance, {**payload_labels, **group_labels}, prefer=PREFERRED_LABELS),
        fingerprint=_fingerprint(alert_payload, group, title),
        timeline=_timeline(group, payload, started_at, resolved_at, shown_title),
    )


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    event_type = text(as_object(payload.get("event")).get("type"))
    if event_type is None:
        raise PayloadError("event.type", "required (send the outgoing webhook with 'Forward whole payload')")
    if event_type.lower() != CLOSING_EVENT:
        return Ignored(f"event type {quoted(event_type, 60)} is not {CLOSING_EVENT!r}")
    return Accepted((_resolved_group(payload, config),))
