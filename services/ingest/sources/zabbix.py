"""Zabbix, through the webhook media type we ship (``zabbix_mediatype.js``): a recovery event is one closed incident.

Zabbix sends what the media type's parameters define; ``tests/fixtures/zabbix/README.md`` documents them. The
incident is the problem event (``{EVENT.ID}``, the same in problem and recovery notifications); the trigger id is
its fingerprint, because the same trigger firing again is the same problem recurring.

Times: ``{EVENT.DATE}``/``{EVENT.TIME}`` are the Zabbix server's local time without an offset, read in
``config.zabbix_timezone``. Local times are ambiguous for the repeated hour when clocks go back, so the media type
also sends ``{EVENT.TIMESTAMP}``/``{EVENT.RECOVERY.TIMESTAMP}`` (UNIX seconds) and those win when present. An
ambiguous local time without a timestamp is read as its first occurrence (``fold=0``).

Zabbix leaves a macro it cannot resolve as its own text (``{EVENT.RECOVERY.DATE}`` in a problem notification), and
some values resolve to ``*UNKNOWN*``; both are read as "not given".
"""

import json
import re
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from schemas import IncidentClosed, Severity, TimelineEntry
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, label_text
from services.ingest.sources._reading import PayloadError, map_payload, quoted, text, truncate
from services.ingest.sources._times import OUT_OF_RANGE, epoch_instant, is_incident_time

SOURCE = "zabbix"
TRIGGER_SOURCE = "0"

# Zabbix's six severities by name ({EVENT.SEVERITY}) and number ({EVENT.NSEVERITY}), in the order Zabbix's own
# Opsgenie media type maps them to priorities (Information/Not classified P5, Warning P4 ... Disaster P1).
SEVERITIES: SeverityTable = {
    "not classified": Severity.UNKNOWN,
    "information": Severity.LOW,
    "warning": Severity.LOW,
    "average": Severity.MEDIUM,
    "high": Severity.HIGH,
    "disaster": Severity.CRITICAL,
    "0": Severity.UNKNOWN,
    "1": Severity.LOW,
    "2": Severity.LOW,
    "3": Severity.MEDIUM,
    "4": Severity.HIGH,
    "5": Severity.CRITICAL,
}

_UNRESOLVED = re.compile(r"\*UNKNOWN\*|\{[$#?]?[A-Z][A-Z0-9_.]*(:[^{}]*)?\}")
_DATE = re.compile(r"([0-9]{4})[.-]([0-9]{2})[.-]([0-9]{2})\.?")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")
# UNIX seconds up to year 5138: larger numbers would be read as milliseconds (see ``epoch_instant``).
_TIMESTAMP = re.compile(r"[0-9]{1,11}")


def value(payload: dict[str, Any], key: str) -> str | None:
    """A parameter's text, or ``None`` when missing, empty or left as an unresolved macro."""
    found = text(payload.get(key))
    if found is None or _UNRESOLVED.fullmatch(found):
        return None
    return found


def local_time(day: str | None, clock: str | None, zone: tzinfo, field: str) -> datetime | None:
    """``2024.05.16`` + ``12:34:56`` in the Zabbix server's zone, as UTC; ``None`` when either part is missing."""
    if day is None or clock is None:
        return None
    day_match, clock_match = _DATE.fullmatch(day), _TIME.fullmatch(clock)
    if day_match is None:
        raise PayloadError(f"{field}_date", f"expected yyyy.mm.dd, got {quoted(day, 40)}")
    if clock_match is None:
        raise PayloadError(f"{field}_time", f"expected hh:mm:ss, got {quoted(clock, 40)}")
    try:
        naive = datetime.combine(
            date(*(int(part) for part in day_match.groups())),
            time(int(clock_match[1]), int(clock_match[2]), int(clock_match[3] or 0)),
        )
        at = naive.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PayloadError(f"{field}_date", f"not a valid date and time: {day} {clock}") from None
    if not is_incident_time(at):
        raise PayloadError(f"{field}_date", f"time is {OUT_OF_RANGE}")
    return at


def unix_time(given: str | None, field: str) -> datetime | None:
    if given is None:
        return None
    at = epoch_instant(given) if _TIMESTAMP.fullmatch(given) else None
    if at is None:
        raise PayloadError(field, f"expected UNIX seconds after 1970, got {quoted(given, 40)}")
    return at


def event_time(payload: dict[str, Any], prefix: str, zone: tzinfo) -> datetime | None:
    """The instant of the problem (``event``) or recovery (``event_recovery``) event."""
    return unix_time(value(payload, f"{prefix}_timestamp"), f"{prefix}_timestamp") or local_time(
        value(payload, f"{prefix}_date"), value(payload, f"{prefix}_time"), zone, prefix
    )


def tags(payload: dict[str, Any]) -> dict[str, str]:
    """``{EVENT.TAGSJSON}`` (``[{"tag": ..., "value": ...}]``, as a list or as its JSON text) as labels.

    A tag may repeat with different values; they are joined with ", ".
    """
    given = payload.get("event_tags")
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(given, list):
        return {}
    joined: dict[str, list[str]] = {}
    for item in given:
        if not isinstance(item, dict):
            continue
        name = text(item.get("tag"))
        if name is not None:
            joined.setdefault(name, []).append(label_text(item.get("value")) or "")
    return {name: ", ".join(values) for name, values in joined.items()}


def closure_state(payload: dict[str, Any]) -> str | None:
    """Why this is not a recovery notification, or ``None`` when it is."""
    if value(payload, "event_update_status") == "1":
        action = value(payload, "event_update_action")
        return "update operation" + (f" ({truncate(action, 80)})" if action else "") + ", not a recovery"
    source = value(payload, "event_source")
    if source is not None and source != TRIGGER_SOURCE:
        return f"event source {quoted(source, 20)} is not a trigger (0)"
    event_value = value(payload, "event_value")
    status = (value(payload, "event_status") or "").upper()
    if event_value == "0" or (event_value is None and status in {"RESOLVED", "OK"}):
        return None
    if event_value == "1" or (event_value is None and status == "PROBLEM"):
        return "problem event, not a recovery"
    raise PayloadError("event_value", "expected 0 (recovery) or 1 (problem), or event_status RESOLVED or PROBLEM")


def _url(payload: dict[str, Any], event_id: str, trigger_id: str | None) -> str | None:
    given = value(payload, "event_url")
    if given is not None:
        return given
    base = value(payload, "zabbix_url")
    if base is None or trigger_id is None:
        return None
    return f"{base.rstrip('/')}/tr_events.php?triggerid={trigger_id}&eventid={event_id}"


def _severity(payload: dict[str, Any], config: NormalisationConfig) -> tuple[Severity, str | None]:
    """Normalised from the name first (operators override by name); the number when the name is renamed or absent."""
    name = value(payload, "event_severity")
    number = value(payload, "event_nseverity")
    severity = config.severity(SOURCE, name, SEVERITIES)
    if severity is Severity.UNKNOWN and number is not None:
        severity = config.severity(SOURCE, number, SEVERITIES)
    return severity, name or number


def _recovered(payload: dict[str, Any], config: NormalisationConfig) -> IncidentClosed:
    event_id = value(payload, "event_id")
    if event_id is None:
        raise PayloadError("event_id", "required")
    zone = config.zabbix_timezone
    resolved_at = event_time(payload, "event_recovery", zone)
    if resolved_at is None:
        raise PayloadError("event_recovery_date", "required with event_recovery_time (or event_recovery_timestamp)")
    started_at = event_time(payload, "event", zone)
    if started_at is not None and started_at > resolved_at:
        raise PayloadError("event_date", "problem starts after its recovery")
    trigger_id = value(payload, "trigger_id")
    event_tags = tags(payload)
    name = value(payload, "event_name")
    recovery_id = value(payload, "event_recovery_id")
    host = value(payload, "host_name")
    severity, source_severity = _severity(payload, config)
    provenance = {"zabbix_host": value(payload, "host_host") or host, "zabbix_recovery_event_id": recovery_id}
    title = name or f"Zabbix problem {event_id}"
    timeline: list[TimelineEntry] = [
        timeline_entry(resolved_at, "resolved", f"recovery event {recovery_id}" if recovery_id else "")
    ]
    if started_at is not None:
        timeline.append(timeline_entry(started_at, "triggered", title))
    return closed_incident(
        source=SOURCE,
        source_incident_id=event_id,
        id_field="event_id",
        resolved_at=resolved_at,
        title=title,
        severity=severity,
        source_severity=source_severity,
        service=event_tags.get("service") or host,
        team=event_tags.get("team"),
        started_at=started_at,
        url=_url(payload, event_id, trigger_id),
        labels=bound_labels(provenance, event_tags, prefer=("service", "team", "component", "scope")),
        fingerprint=trigger_id,
        timeline=timeline,
    )


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    return map_payload(raw, config, _map)


def _map(payload: dict[str, Any], config: NormalisationConfig) -> Outcome:
    not_closed = closure_state(payload)
    if not_closed is not None:
        return Ignored(not_closed)
    return Accepted((_recovered(payload, config),))
