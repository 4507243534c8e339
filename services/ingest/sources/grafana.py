"""Grafana alerting (unified alerting) webhook contact point: the Alertmanager group shape plus Grafana's fields.

Each resolved alert is one incident, mapped by the Alertmanager source's per-alert logic; this module only says what
Grafana adds: the organisation, links to the panel or dashboard, the query values that fired, a screenshot URL.
Legacy (pre-unified) Grafana alerting payloads (``ruleId``, ``evalMatches``, no ``alerts``) are not supported.
"""

from dataclasses import dataclass
from typing import Any

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Invalid, Outcome, RawIncident
from services.ingest.sources._labels import label_text
from services.ingest.sources._reading import first_text, json_object, text
from services.ingest.sources.alertmanager import SEVERITIES, AlertDetails, GroupDialect, normalise_group

SOURCE = "grafana"


def _values_text(alert: dict[str, Any]) -> str | None:
    """What the rule's queries evaluated to: ``valueString`` (older Grafana) or ``values`` (newer)."""
    value_string = text(alert.get("valueString"))
    if value_string is not None:
        return value_string
    values = alert.get("values")
    if isinstance(values, dict) and values:
        return ", ".join(f"{name}={label_text(value) or ''}" for name, value in values.items())
    return None


@dataclass(frozen=True)
class GrafanaDialect(GroupDialect):
    def group_labels(self, payload: dict[str, Any]) -> dict[str, str]:
        org_id = text(payload.get("orgId"))
        return {"grafana_org_id": org_id} if org_id else {}

    def alert_details(self, alert: dict[str, Any]) -> AlertDetails:
        image_url = text(alert.get("imageURL"))
        return AlertDetails(
            # Where a reviewer sees the data first: the panel, then its dashboard, then the rule.
            url=first_text(alert.get("panelURL"), alert.get("dashboardURL"), alert.get("generatorURL")),
            labels={"grafana_image_url": image_url} if image_url else {},
            evidence=_values_text(alert),
        )


GRAFANA = GrafanaDialect(source=SOURCE, severities=SEVERITIES)


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    payload = json_object(raw.body)
    if isinstance(payload, Invalid):
        return payload
    if "alerts" not in payload and ("evalMatches" in payload or "ruleId" in payload):
        return Invalid("alerts: required; legacy Grafana alerting payloads (ruleId, evalMatches) are not supported")
    return normalise_group(payload, raw, config, GRAFANA)
