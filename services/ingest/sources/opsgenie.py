"""Opsgenie webhook integration: the ``Close`` action is a closure; Create, Acknowledge, AddNote... are ignored.

The payload is ``{"action", "alert": {...}, "source": {...}, "integrationName", ...}``. Opsgenie documents
``alert.createdAt`` in epoch milliseconds and ``alert.updatedAt`` in epoch *nanoseconds* (``1420452224764002246``),
so both are read by magnitude (see ``_times.epoch_instant``); ISO 8601 text with an offset is accepted too. The
alert was closed when it was last updated, so ``updatedAt`` is the resolution time and is required.

- Severity: the alert priority (``P1``..``P5``).
- Fingerprint: the alias, Opsgenie's de-duplication key.
- Service and team: an alert has neither as such. They come from the alert's ``details`` (``service``/``team``) or
  from ``service:``/``team:`` tags. ``alert.teams`` holds team *ids*, kept as a label, not used as the team name.
- ``key:value`` tags and the details become labels; plain tags are kept, comma-joined, in the ``tags`` label.
  Opsgenie sends details only for Create and custom actions unless the integration is set to add them.
- The webhook carries no link to the alert (the host depends on the account and region), so ``url`` is empty.
"""

from typing import Any

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, object_labels, split_tags
from services.ingest.sources._reading import (
    PayloadError,
    as_list,
    first_text,
    map_payload,
    quoted,
    required_object,
    required_text,
    text,
    texts,
)
from services.ingest.sources._times import instant

SOURCE = "opsgenie"
CLOSURE_ACTION = "close"

# Opsgenie's fixed priorities: P1 critical .. P5 informational (P3, "moderate", is the default).
SEVERITIES: SeverityTable = {
    "P1": Severity.CRITICAL,
    "P2": Severity.HIGH,
    "P3": Severity.MEDIUM,
    "P4": Severity.LOW,
    "P5": Severity.LOW,
}


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    action = required_text(payload.get("action"), "action")
    if action.lower() != CLOSURE_ACTION:
        return Ignored(f"action {quoted(action)} is not Close")
    alert = required_object(payload.get("alert"), "alert")
    alert_id = required_text(alert.get("alertId"), "alert.alertId")
    title = required_text(alert.get("message"), "alert.message")
    resolved_at = instant(alert.get("updatedAt"))
    if resolved_at is None:
        raise PayloadError("alert.updatedAt", "required, an epoch time (ms or ns) or an ISO 8601 time with an offset")
    started_at = instant(alert.get("createdAt"))

    details = object_labels(alert.get("details"))
    tag_pairs, plain_tags = split_tags(as_list(alert.get("tags")))
    priority = text(alert.get("priority"))
    closed_by = text(alert.get("username"))

    timeline = [timeline_entry(resolved_at, "closed", text(alert.get("note")) or "", actor=closed_by)]
    if started_at is not None:
        timeline.append(timeline_entry(started_at, "created", title))
    own = {
        "tiny_id": text(alert.get("tinyId")),
        "priority": priority,
        "entity": text(alert.get("entity")),
        "alert_source": text(alert.get("source")),
        "integration": text(payload.get("integrationName")),
        "team_ids": ",".join(texts(as_list(alert.get("teams")))) or None,
        "closed_by": closed_by,
        "tags": ",".join(plain_tags) or None,
    }
    incident = closed_incident(
        source=SOURCE,
        source_incident_id=alert_id,
        id_field="alert.alertId",
        title=title,
        resolved_at=resolved_at,
        started_at=started_at,
        timeline=timeline,
        severity=config.severity(SOURCE, priority, SEVERITIES),
        source_severity=priority,
        service=first_text(details.get("service"), tag_pairs.get("service")),
        team=first_text(details.get("team"), tag_pairs.get("team")),
        labels=bound_labels(own, {**tag_pairs, **details}),
        fingerprint=text(alert.get("alias")),
    )
    return Accepted((incident,))
