"""One module per source: pure functions ``(RawIncident, NormalisationConfig) -> Outcome``.

``normalise`` picks the source from the record's headers; a record whose source is missing or unknown is invalid.
"""

from collections.abc import Callable

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Invalid, Outcome, RawIncident
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
    return normaliser(raw, config)
