"""Vendor times as UTC instants: ISO 8601 text with an offset, or epoch numbers whose unit is told by their size.

``iso_instant`` and ``epoch_instant`` are lenient (``None`` for anything unusable, for optional fields);
``required_iso_instant`` raises ``PayloadError`` naming the field and saying what was wrong. A time outside the years
the contract accepts (1970 to 2200) is unusable: Go's zero time and ``9999-12-31`` are placeholders, not incidents.
"""

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.incident import EARLIEST_INCIDENT_TIME, LATEST_INCIDENT_TIME
from services.ingest.sources._reading import MAX_INTEGER, PayloadError, quoted

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_TEXT = re.compile(r"\d{1,21}(?:\.\d{1,9})?")
OUT_OF_RANGE = "outside the accepted years 1970 to 2200"


def is_incident_time(value: datetime) -> bool:
    """Within the years ``IncidentClosed`` accepts."""
    return EARLIEST_INCIDENT_TIME <= value <= LATEST_INCIDENT_TIME


def required_iso_instant(value: Any, field: str) -> datetime:
    """An ISO 8601 / RFC 3339 time with an offset (``Z`` or ``+02:00``), in UTC; ``PayloadError`` otherwise.

    A time without an offset is refused rather than guessed: the vendors here all document UTC offsets. A time outside
    the accepted years is refused, except Go's zero time, returned as is for the callers that read it as "not set"
    (``is_zero_time``).
    """
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(field, "expected an ISO 8601 time with an offset")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(field, f"not an ISO 8601 time: {quoted(value, 60)}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PayloadError(field, "time carries no offset")
    try:
        in_utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PayloadError(field, "time is out of range") from None
    if not is_incident_time(in_utc) and not is_zero_time(in_utc):
        raise PayloadError(field, f"time is {OUT_OF_RANGE}")
    return in_utc


def is_zero_time(value: datetime) -> bool:
    """Go's zero time (``0001-01-01T00:00:00Z``), which Alertmanager and Grafana send for 'not set'."""
    return value.year == 1


def iso_instant(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset, in UTC; ``None`` if missing, malformed, without an offset or Go's zero time."""
    try:
        parsed = required_iso_instant(value, "")
    except PayloadError:
        return None
    return None if is_zero_time(parsed) else parsed


def _epoch_number(value: Any) -> Decimal | None:
    """A positive, finite number of bounded size from a JSON number or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and (not math.isfinite(value) or not 0 < value < MAX_INTEGER):
        return None
    if isinstance(value, int | float):
        return Decimal(value)
    if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
        return number if number > 0 else None
    return None


def epoch_instant(value: Any) -> datetime | None:
    """An epoch number (or a string of digits) in UTC, its unit told by its size; ``None`` otherwise.

    Opsgenie sends ``createdAt`` in milliseconds but ``updatedAt`` in nanoseconds, Datadog sends milliseconds, Zabbix
    and people send seconds, so the unit is inferred: below 1e11 seconds, below 1e14 milliseconds, below 1e17
    microseconds, else nanoseconds. Each boundary is 1973 in the smaller unit and year 5138 in the larger, so any
    plausible incident time is read right. Zero and negative values mean "not set".
    """
    number = _epoch_number(value)
    if number is None:
        return None
    if number < 100_000_000_000:
        micros = number * 1_000_000
    elif number < 100_000_000_000_000:
        micros = number * 1_000
    elif number < 100_000_000_000_000_000:
        micros = number
    else:
        micros = number / 1_000
    try:
        at = _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        return None
    return at if is_incident_time(at) else None


def instant(value: Any) -> datetime | None:
    """Either form: an ISO 8601 time with an offset, or an epoch number."""
    return iso_instant(value) or epoch_instant(value)


def compact_utc(value: datetime) -> str:
    """``20240516T103456Z``: a short, sortable form for ids derived from a time."""
    # Formatted by hand: ``strftime`` took 5% of ingest's CPU per alert in an alert storm.
    at = value.astimezone(UTC)
    return f"{at.year:04d}{at.month:02d}{at.day:02d}T{at.hour:02d}{at.minute:02d}{at.second:02d}Z"
