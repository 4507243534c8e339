"""One module per source: pure functions ``(RawIncident, NormalisationConfig) -> Outcome``.

``normalise`` picks the source from the record's headers; a record whose source is missing or unknown is invalid,
and so is one whose incidents would serialise to more than ``NormalisationConfig.max_incident_bytes`` (a record
Kafka would refuse is caught here, with its size, not at publish time).
"""

from collections.abc import Callable

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, Invalid, Outcome, RawIncident
from services.ingest.sources import (
    alertmanager,
    cloudevents,
    datadog,
    generic,
    grafana,
    grafana_oncall,
    incidentio,
    opsgenie,
    pagerduty,
    zabbix,
)

Normaliser = Callable[[RawIncident, NormalisationConfig], Outcome]

NORMALISERS: dict[str, Normaliser] = {
    "pagerduty": pagerduty.normalise,
    "opsgenie": opsgenie.normalise,
    "alertmanager": alertmanager.normalise,
    "grafana": grafana.normalise,
    "grafana-oncall": grafana_oncall.normalise,
    "datadog": datadog.normalise,
    "incidentio": incidentio.normalise,
    "zabbix": zabbix.normalise,
    "cloudevents": cloudevents.normalise,
    "generic": generic.normalise,
}


def source_of(raw: RawIncident) -> str | None:
    """The ``source`` header, or ``cloudevents`` for a Kafka binary-mode CloudEvent without one."""
    source = raw.headers.get("source")
    if source:
        return source.strip().lower()
    if cloudevents.is_binary_mode(raw.headers):
        return "cloudevents"
    return None


def normalise(raw: RawIncident, config: NormalisationConfig) -> Outcome:
    source = source_of(raw)
    if source is None:
        return Invalid("no source header (and no ce_specversion header)")
    normaliser = NORMALISERS.get(source)
    if normaliser is None:
        return Invalid(f"unknown source {source!r}; known: {', '.join(sorted(NORMALISERS))}")
    return within_size_limit(normaliser(raw, config), config.max_incident_bytes)


def within_size_limit(outcome: Outcome, max_bytes: int) -> Outcome:
    """The outcome, or ``Invalid`` when an accepted incident is larger than ``max_bytes`` as JSON (the whole payload:
    an outcome is all or nothing)."""
    if not isinstance(outcome, Accepted):
        return outcome
    encoded = tuple(incident.model_dump_json().encode() for incident in outcome.incidents)
    for incident, payload in zip(outcome.incidents, encoded, strict=True):
        if len(payload) > max_bytes:
            return Invalid(
                f"incident {incident.incident_key[:100]!r} is {len(payload)} bytes as JSON, over the {max_bytes}-byte"
                " limit (shorten its timeline or text)"
            )
    return Accepted(outcome.incidents, encoded)
