"""Operator choices that shape normalisation (severity tables, vendor quirks), passed into the pure sources."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from schemas import Severity
from services.ingest.domain.severity import SeverityTable, normalise_severity


@dataclass(frozen=True)
class NormalisationConfig:
    # Per-source overrides, consulted before the source's built-in table and the common vocabulary.
    severity_overrides: Mapping[str, SeverityTable] = field(default_factory=dict)
    # Zabbix sends local times without an offset; this is the zone its server runs in.
    zabbix_timezone: tzinfo = UTC

    def severity(self, source: str, value: str | None, defaults: SeverityTable | None = None) -> Severity:
        return normalise_severity(value, self.severity_overrides.get(source, {}), defaults or {})
