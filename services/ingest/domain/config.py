"""Operator choices that shape normalisation (severity tables, vendor quirks), passed into the pure sources."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from schemas import Severity
from services.ingest.domain.severity import SeverityTable, normalise_severity

DEFAULT_MAX_INCIDENT_BYTES = 512 * 1024


@dataclass(frozen=True)
class NormalisationConfig:
    # Per-source overrides, consulted before the source's built-in table and the common vocabulary.
    severity_overrides: Mapping[str, SeverityTable] = field(default_factory=dict)
    # Zabbix sends local times without an offset; this is the zone its server runs in.
    zabbix_timezone: tzinfo = UTC
    # The largest IncidentClosed, as JSON, that normalisation lets out. Half of the producers' 1 MiB record limit
    # (aiokafka's max_request_size, the broker's message.max.bytes): room for the key and headers, for the DLQ
    # headers if it is ever dead-lettered, and for review's events and documents that embed it with fields of their
    # own. Bounded sources come nowhere near it; only a pathological generic form or CloudEvent does.
    max_incident_bytes: int = DEFAULT_MAX_INCIDENT_BYTES

    def severity(self, source: str, value: str | None, defaults: SeverityTable | None = None) -> Severity:
        return normalise_severity(value, self.severity_overrides.get(source, {}), defaults or {})
