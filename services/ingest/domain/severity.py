"""Vendor severity or priority -> our normalised ``Severity``, from a table operators can override."""

from collections.abc import Mapping

from schemas import Severity

SeverityTable = Mapping[str, Severity]

# Common vocabulary across tools; a source's own table is consulted first, then this one.
COMMON_SEVERITIES: SeverityTable = {
    "critical": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "disaster": Severity.CRITICAL,
    "sev0": Severity.CRITICAL,
    "sev1": Severity.CRITICAL,
    "p1": Severity.CRITICAL,
    "high": Severity.HIGH,
    "major": Severity.HIGH,
    "error": Severity.HIGH,
    "sev2": Severity.HIGH,
    "p2": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "average": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "sev3": Severity.MEDIUM,
    "p3": Severity.MEDIUM,
    "low": Severity.LOW,
    "minor": Severity.LOW,
    "info": Severity.LOW,
    "information": Severity.LOW,
    "informational": Severity.LOW,
    "sev4": Severity.LOW,
    "sev5": Severity.LOW,
    "p4": Severity.LOW,
    "p5": Severity.LOW,
}


def _comparable(name: str) -> str:
    return "".join(name.split()).lower()


def _by_name(table: SeverityTable) -> dict[str, Severity]:
    found: dict[str, Severity] = {}
    for known, severity in table.items():
        found.setdefault(_comparable(known), severity)  # the first spelling listed wins, as in a scan
    return found


# Consulted for every alert: the common table's names in compared form, computed once instead of on each look-up.
_COMMON_BY_NAME = _by_name(COMMON_SEVERITIES)


def normalise_severity(value: str | None, *tables: SeverityTable) -> Severity:
    """Look the vendor's value up (case- and space-insensitive) in each table in turn; unknown when absent."""
    if value is None:
        return Severity.UNKNOWN
    wanted = _comparable(value)
    for table in tables:
        for known, severity in table.items():
            if _comparable(known) == wanted:
                return severity
    return _COMMON_BY_NAME.get(wanted, Severity.UNKNOWN)
