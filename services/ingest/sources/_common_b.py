"""Helpers shared by the alertmanager, grafana, grafana-oncall and zabbix sources.

Vendors vary types and leave fields out; these helpers read leniently and say precisely which field was wrong when a
payload cannot become an incident. A source raises ``PayloadError`` deep inside its mapping and turns it into
``Invalid`` at its boundary, so every input ends as an outcome and none as an exception.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import IncidentClosed, TimelineEntry
from services.ingest.sources._parsing import describe

MAX_LABELS = 64
MAX_LABEL_VALUE = 1_000
MAX_LABEL_KEY = 200
MAX_TITLE = 2_000
MAX_INCIDENT_ID = 500
MAX_TIMELINE_MESSAGE = 10_000
LABELS_DROPPED = "incident_lessons_labels_dropped"
"""Label added when a vendor sent more than ``MAX_LABELS`` labels: how many were left out (never silently)."""


class PayloadError(Exception):
    """Why a payload cannot become an incident, naming the field; the source returns it as ``Invalid``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one when the vendor sent something else (for optional, decorative parts)."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    """A non-empty, stripped string from a string or a number; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped or None


def first_text(*values: Any) -> str | None:
    for value in values:
        found = text(value)
        if found is not None:
            return found
    return None


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def title_text(value: str) -> str:
    return truncate(value, MAX_TITLE)


def incident_id(value: str, field: str) -> str:
    """An id as the vendor gave it: cutting it could merge two incidents, so an over-long one is refused."""
    if len(value) > MAX_INCIDENT_ID:
        raise PayloadError(field, f"longer than {MAX_INCIDENT_ID} characters")
    return value


def parse_instant(value: Any, field: str) -> datetime:
    """An ISO 8601 / RFC 3339 time with an offset, in UTC; ``PayloadError`` naming the field otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(field, "expected an ISO 8601 time with an offset")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(field, f"not an ISO 8601 time: {truncate(value, 60)!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PayloadError(field, "time carries no offset")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PayloadError(field, "time is out of range") from None


def is_zero_time(value: datetime) -> bool:
    """Go's zero time (``0001-01-01T00:00:00Z``), which Alertmanager and Grafana send for 'not set'."""
    return value.year == 1


def optional_instant(value: Any) -> datetime | None:
    """A time for optional fields: missing, malformed or zero time all mean 'not known'."""
    try:
        parsed = parse_instant(value, "")
    except PayloadError:
        return None
    return None if is_zero_time(parsed) else parsed


def compact_utc(value: datetime) -> str:
    """``20240516T103456Z``: a short, sortable form for ids derived from a time."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def label_text(value: Any) -> str:
    """A label value as text: scalars as written in JSON, structures as compact JSON, always bounded."""
    if isinstance(value, str):
        rendered = value
    elif isinstance(value, bool):
        rendered = "true" if value else "false"
    elif value is None:
        rendered = ""
    elif isinstance(value, int | float):
        rendered = str(value)
    else:
        try:
            rendered = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        except (ValueError, TypeError, RecursionError):
            rendered = f"<{type(value).__name__}>"
    return truncate(rendered, MAX_LABEL_VALUE)


def scalar_labels(value: Any) -> dict[str, str]:
    """A vendor's label map as ``dict[str, str]``; anything that is not an object gives no labels."""
    if not isinstance(value, dict):
        return {}
    return {str(key): label_text(item) for key, item in value.items()}


def bound_labels(
    labels: Mapping[str, str], *, extra: Mapping[str, str] | None = None, prefer: Sequence[str] = ()
) -> dict[str, str]:
    """At most ``MAX_LABELS`` labels, values cut to ``MAX_LABEL_VALUE`` characters.

    ``extra`` (our own provenance labels) always survives; then the ``prefer`` keys, then the rest in key order, so the
    choice is deterministic. When labels are left out, ``LABELS_DROPPED`` says how many.
    """
    kept: dict[str, str] = {}
    for key, value in (extra or {}).items():
        kept[truncate(key, MAX_LABEL_KEY)] = truncate(value, MAX_LABEL_VALUE)
    ordered = [key for key in prefer if key in labels]
    ordered += sorted(key for key in labels if key not in set(prefer))
    candidates = [(truncate(key, MAX_LABEL_KEY), labels[key]) for key in ordered]
    candidates = [(key, value) for key, value in candidates if key not in kept]
    room = MAX_LABELS - len(kept)
    if len(candidates) > room:
        room -= 1  # one slot for saying how many were left out
        kept.update((key, truncate(value, MAX_LABEL_VALUE)) for key, value in candidates[: max(room, 0)])
        kept[LABELS_DROPPED] = str(len(candidates) - max(room, 0))
    else:
        kept.update((key, truncate(value, MAX_LABEL_VALUE)) for key, value in candidates)
    return kept


def timeline_entry(at: datetime, kind: str, message: str = "", actor: str | None = None) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind=truncate(kind, 200),
        message=truncate(message, MAX_TIMELINE_MESSAGE),
        actor=truncate(actor, 200) if actor else None,
    )


def create_incident(
    *, source: str, source_incident_id: str, resolved_at: datetime, timeline: Iterable[TimelineEntry], **fields: Any
) -> IncidentClosed:
    """``IncidentClosed.create`` with a validation failure turned into a ``PayloadError`` naming the field."""
    try:
        return IncidentClosed.create(
            source=source,
            source_incident_id=source_incident_id,
            resolved_at=resolved_at,
            timeline=tuple(sorted(timeline, key=lambda entry: entry.at)),
            **fields,
        )
    except ValidationError as exc:
        raise PayloadError("incident", describe(exc)) from None
