"""Datadog monitor notifications through the Webhooks integration, with the payload ``datadog_template.json``.

Datadog has no fixed webhook body: users write it with ``$VARIABLES``. Paste ``datadog_template.json`` (next to this
module) into the webhook's Payload field, leave "Encode as form" unchecked, and keep every variable inside quotes;
this source reads that shape. Values are read as text or numbers, and a variable Datadog left unsubstituted
(``"$ALERT_CYCLE_KEY"``) counts as absent.

- A closure is ``alert_transition`` = ``Recovered``; Triggered, Re-Triggered, Warn, No Data, Renotify... are ignored.
- Identity: the alert cycle key (one monitor alert, from trigger to recovery), else monitor id + aggregation key.
- Resolution time: ``$DATE`` (epoch ms), else ``$LAST_UPDATED``. Datadog's variables carry no trigger time for a
  recovery, so ``started_at`` is empty and the timeline is the recovery itself.
- Title: the event title without Datadog's ``[Recovered]``/``[P2]`` prefixes.
- Severity: ``$ALERT_PRIORITY`` (``P1``..``P5``); monitors without a priority give ``unknown``.
- Labels: the ``$ALERT_SCOPE`` and ``$TAGS`` tags (``key:value`` as labels, plain tags in ``tags``); service and team
  from the ``service:`` and ``team:`` tags.
- Fingerprint: the monitor id and its scope (the same monitor alerting for the same group), else the aggregation key.
"""

import re
from typing import Any

from schemas import Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, comma_separated, split_tags
from services.ingest.sources._reading import PayloadError, as_object, map_payload, quoted, text
from services.ingest.sources._times import epoch_instant

SOURCE = "datadog"
CLOSURE_TRANSITION = "recovered"
TEMPLATE_HINT = "send the payload in services/ingest/sources/datadog_template.json"

# Datadog monitor priorities, P1 (critical) .. P5 (informational).
SEVERITIES: SeverityTable = {
    "P1": Severity.CRITICAL,
    "P2": Severity.HIGH,
    "P3": Severity.MEDIUM,
    "P4": Severity.LOW,
    "P5": Severity.LOW,
}

_UNSUBSTITUTED = re.compile(r"\$[A-Z][A-Z0-9_]*(?:\[[^\]]*\])?")
_TITLE_PREFIXES = re.compile(r"^\s*(?:\[[^\]]*\]\s*)+")


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _value(payload: dict[str, Any], key: str) -> str | None:
    """The variable's text, ``None`` when empty, missing or left as the ``$VARIABLE`` itself."""
    found = text(payload.get(key))
    return None if found is None or _UNSUBSTITUTED.fullmatch(found) else found


def _tags(payload: dict[str, Any], key: str) -> list[str]:
    """A comma-separated tag list (or a JSON list of tags), without unsubstituted variables."""
    value = payload.get(key)
    tags = comma_separated(value if isinstance(value, list) else _value(payload, key))
    return [tag for tag in tags if not _UNSUBSTITUTED.fullmatch(tag)]


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    return _TITLE_PREFIXES.sub("", value).strip() or value


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    transition = _value(payload, "alert_transition")
    if transition is None:
        raise PayloadError("alert_transition", f"required; {TEMPLATE_HINT}")
    if transition.lower() != CLOSURE_TRANSITION:
        return Ignored(f"alert_transition {quoted(transition)} is not Recovered")
    alert_id = _value(payload, "alert_id")
    aggreg_key = _value(payload, "aggreg_key")
    cycle_key = _value(payload, "alert_cycle_key")
    if cycle_key is not None:
        incident_id, id_field = cycle_key, "alert_cycle_key"
    elif alert_id is not None and aggreg_key is not None:
        incident_id, id_field = f"{alert_id}:{aggreg_key}", "alert_id"
    else:
        raise PayloadError("alert_cycle_key", "required (or both alert_id and aggreg_key) to identify the alert")
    title = _title(_value(payload, "title")) or _title(_value(payload, "alert_title"))
    if title is None:
        raise PayloadError("title", f"required, the $EVENT_TITLE; {TEMPLATE_HINT}")
    resolved_at = epoch_instant(_value(payload, "date")) or epoch_instant(_value(payload, "last_updated"))
    if resolved_at is None:
        raise PayloadError("date", "required, the $DATE of the recovery in epoch milliseconds")

    scope = _tags(payload, "alert_scope")
    tags = _tags(payload, "tags")
    pairs, plain = split_tags([*scope, *tags])
    priority = _value(payload, "alert_priority")
    org = as_object(payload.get("org"))
    own = {
        "monitor_id": alert_id,
        "alert_cycle_key": cycle_key,
        "aggreg_key": aggreg_key,
        "priority": priority,
        "alert_type": _value(payload, "alert_type"),
        "event_type": _value(payload, "event_type"),
        "alert_metric": _value(payload, "alert_metric"),
        "hostname": _value(payload, "hostname"),
        "scope": ",".join(scope) or None,
        "tags": ",".join(plain) or None,
        "org_id": _value(org, "id"),
        "org_name": _value(org, "name"),
        "datadog_event_id": _value(payload, "id"),
    }
    if alert_id is not None:
        fingerprint: str | None = f"{alert_id}|{','.join(sorted(scope))}" if scope else alert_id
    else:
        fingerprint = aggreg_key
    incident = closed_incident(
        source=SOURCE,
        source_incident_id=incident_id,
        id_field=id_field,
        title=title,
        resolved_at=resolved_at,
        started_at=None,
        timeline=[timeline_entry(resolved_at, "recovered", _value(payload, "alert_status") or "")],
        severity=config.severity(SOURCE, priority, SEVERITIES),
        source_severity=priority,
        service=text(pairs.get("service")),
        team=text(pairs.get("team")),
        url=_value(payload, "link"),
        labels=bound_labels(own, pairs),
        fingerprint=fingerprint,
    )
    return Accepted((incident,))
