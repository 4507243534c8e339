"""Prometheus Alertmanager webhook (payload version 4): each resolved alert in a group is one closed incident.

A group notification can mix firing and resolved alerts. Every resolved alert becomes its own incident, identified by
its fingerprint (a hash of its label set) and its ``startsAt``, so the same alert firing again later is a new incident
while a re-sent notification about the same firing is recognised as a duplicate. Firing alerts are not closures.

If any resolved alert in a group cannot be mapped, the whole record is ``Invalid``: the DLQ keeps its bytes and,
because event ids are deterministic, replaying it after a fix cannot duplicate the alerts that were fine.

The per-alert mapping is shared with the Grafana source (Grafana alerting sends the same shape plus its own fields);
``normalise_group`` takes a ``GroupDialect`` for what differs.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import IncidentClosed, Severity
from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Ignored, Invalid, Outcome, RawIncident
from services.ingest.domain.severity import SeverityTable
from services.ingest.sources._incident import closed_incident, timeline_entry
from services.ingest.sources._labels import bound_labels, object_labels
from services.ingest.sources._reading import PayloadError, first_text, json_object, text, truncate
from services.ingest.sources._times import compact_utc, is_zero_time, iso_instant, required_iso_instant

SOURCE = "alertmanager"
SUPPORTED_VERSION = "4"

# Alertmanager's ``severity`` label is free text; these are conventions the common vocabulary does not cover
# ("page"/"ticket" from the SRE book's alerting guidance, "none" on always-firing watchdog alerts).
SEVERITIES: SeverityTable = {
    "page": Severity.HIGH,
    "ticket": Severity.MEDIUM,
    "notice": Severity.LOW,
    "none": Severity.LOW,
}

# Labels the mapping reads; kept first when a group carries more labels than we store.
PREFERRED_LABELS = ("alertname", "severity", "service", "job", "team", "instance", "namespace", "cluster")


@dataclass(frozen=True)
class AlertDetails:
    """What a dialect adds to one alert's mapping."""

    url: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # What the alert fired on (query values...), added to the timeline's triggered entry.
    evidence: str | None = None


@dataclass(frozen=True)
class GroupDialect:
    """How a vendor speaking the Alertmanager shape differs from Alertmanager itself (override the methods)."""

    source: str
    severities: SeverityTable
    # Only Alertmanager's own payload carries version "4"; Grafana sends "1". ``None``: do not check.
    version: str | None = None

    @property
    def truncated_label(self) -> str:
        return f"{self.source.replace('-', '_')}_truncated_alerts"

    def group_labels(self, payload: dict[str, Any]) -> dict[str, str]:
        """Labels every incident of the group carries, from the group's own fields."""
        return {}

    def alert_details(self, alert: dict[str, Any]) -> AlertDetails:
        """Alertmanager links each alert to the expression that produced it."""
        return AlertDetails(url=text(alert.get("generatorURL")))


ALERTMANAGER = GroupDialect(source=SOURCE, severities=SEVERITIES, version=SUPPORTED_VERSION)


def truncated_alerts(payload: dict[str, Any]) -> int:
    """How many alerts Alertmanager left out because of ``max_alerts`` (0 when absent or unreadable)."""
    value = payload.get("truncatedAlerts")
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        return int(value.strip())
    return 0


def alert_fingerprint(alert: dict[str, Any], labels: Mapping[str, str], where: str) -> str:
    """The alert's fingerprint; for senders that omit it, a hash of the label set (what Alertmanager hashes too)."""
    given = text(alert.get("fingerprint"))
    if given is not None:
        return given
    if not labels:
        raise PayloadError(f"{where}.fingerprint", "required (or labels to derive it from)")
    canonical = "\x1f".join(f"{key}\x1e{labels[key]}" for key in sorted(labels))
    return "labels-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def resolve_time(alert: dict[str, Any], where: str, received_at: datetime | None) -> tuple[datetime, bool]:
    """When the alert resolved, and whether that is only the time the notification was received.

    Resolved alerts carry ``endsAt``; some senders leave Go's zero time there. The ``received-at`` header the webhook
    receiver records is then the best upper bound we have; without it the alert cannot be placed in time.
    """
    ends_at = alert.get("endsAt")
    if ends_at is not None and ends_at != "":
        parsed = required_iso_instant(ends_at, f"{where}.endsAt")
        if not is_zero_time(parsed):
            return parsed, False
    if received_at is not None:
        return received_at, True
    raise PayloadError(f"{where}.endsAt", "no usable resolve time (zero or missing) and no received-at header")


def resolved_alert(
    alert: dict[str, Any],
    where: str,
    *,
    dialect: GroupDialect,
    config: NormalisationConfig,
    extra_labels: Mapping[str, str],
    received_at: datetime | None,
) -> IncidentClosed:
    """One resolved alert as a closed incident; ``PayloadError`` naming the field when it cannot be."""
    labels = object_labels(alert.get("labels"))
    annotations = object_labels(alert.get("annotations"))
    starts_at = required_iso_instant(alert.get("startsAt"), f"{where}.startsAt")
    if is_zero_time(starts_at):
        raise PayloadError(f"{where}.startsAt", "zero time; the alert's start is needed to identify it")
    resolved_at, approximate = resolve_time(alert, where, received_at)
    if starts_at > resolved_at:
        raise PayloadError(f"{where}.endsAt", "before startsAt")
    fingerprint = alert_fingerprint(alert, labels, where)
    details = dialect.alert_details(alert)
    title = first_text(annotations.get("summary"), annotations.get("description"), labels.get("alertname"))
    severity = text(labels.get("severity"))
    provenance = {**extra_labels, **details.labels}
    if approximate:
        provenance["resolved_at_source"] = "received-at"
    return closed_incident(
        source=dialect.source,
        source_incident_id=f"{fingerprint}@{compact_utc(starts_at)}",
        id_field=f"{where}.fingerprint",
        resolved_at=resolved_at,
        title=title or f"Alert {fingerprint}",
        severity=config.severity(dialect.source, severity, dialect.severities),
        source_severity=severity,
        service=first_text(labels.get("service"), labels.get("job")),
        team=text(labels.get("team")),
        started_at=starts_at,
        url=details.url,
        labels=bound_labels(provenance, labels, prefer=PREFERRED_LABELS),
        fingerprint=fingerprint,
        timeline=(
            timeline_entry(starts_at, "triggered", "\n".join(part for part in (title, details.evidence) if part)),
            timeline_entry(
                resolved_at,
                "resolved",
                "resolve time unknown: time the notification was received" if approximate else "",
            ),
        ),
    )


def _is_resolved(alert: dict[str, Any], group_status: str | None) -> tuple[bool, str]:
    status = (text(alert.get("status")) or group_status or "unknown").lower()
    return status == "resolved", truncate(status, 40)


def normalise_group(
    payload: dict[str, Any], raw: RawIncident, config: NormalisationConfig, dialect: GroupDialect
) -> Outcome:
    """Map a decoded group notification: one incident per resolved alert, or why there is none."""
    if dialect.version is not None and "version" in payload:
        version = text(payload.get("version"))
        if version != dialect.version:
            given = truncate(repr(payload.get("version")), 40)
            return Invalid(f"version: {given} is not supported (expected {dialect.version!r})")
    alerts = payload.get("alerts")
    if alerts is None:
        return Invalid("alerts: required")
    if not isinstance(alerts, list):
        return Invalid(f"alerts: expected a list, got {type(alerts).__name__}")
    truncated = truncated_alerts(payload)
    try:
        incidents, not_closed = _map_alerts(
            alerts, payload=payload, raw=raw, config=config, dialect=dialect, truncated=truncated
        )
    except PayloadError as exc:
        return Invalid(str(exc))
    if incidents:
        return Accepted(incidents)
    return Ignored(_why_nothing_resolved(not_closed, truncated))


def _map_alerts(
    alerts: list[Any],
    *,
    payload: dict[str, Any],
    raw: RawIncident,
    config: NormalisationConfig,
    dialect: GroupDialect,
    truncated: int,
) -> tuple[tuple[IncidentClosed, ...], dict[str, int]]:
    """The incidents of the resolved alerts, and how many alerts were in each other status."""
    group_status = text(payload.get("status"))
    received_at = iso_instant(raw.headers.get("received-at"))
    extra_labels = dialect.group_labels(payload)
    if truncated:
        extra_labels[dialect.truncated_label] = str(truncated)
    incidents: list[IncidentClosed] = []
    not_closed: dict[str, int] = {}
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise PayloadError(where, f"expected an object, got {type(alert).__name__}")
        resolved, status = _is_resolved(alert, group_status)
        if not resolved:
            not_closed[status] = not_closed.get(status, 0) + 1
            continue
        incidents.append(
            resolved_alert(
                alert, where, dialect=dialect, config=config, extra_labels=extra_labels, received_at=received_at
            )
        )
    return tuple(incidents), not_closed


def _why_nothing_resolved(not_closed: Mapping[str, int], truncated: int) -> str:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(not_closed.items()))
    reason = f"no resolved alerts ({counts})" if counts else "no alerts in the group"
    if truncated:
        reason += (
            f"; {truncated} alerts were truncated by max_alerts and not delivered, resolved ones may be among them"
        )
    return reason


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    payload = json_object(raw.body)
    if isinstance(payload, Invalid):
        return payload
    return normalise_group(payload, raw, config, ALERTMANAGER)
