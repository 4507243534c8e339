"""Helpers shared by the pagerduty, opsgenie, incidentio and datadog sources.

Vendors vary types, leave fields out and send times as ISO 8601 text or as epoch numbers in several units. These
helpers read leniently where a field is decorative and strictly, naming the field, where the incident needs it. A
source raises ``PayloadError`` deep in its mapping and returns it as ``Invalid`` at its boundary, so every input ends
as an outcome, never as an exception.

Bounds (so one noisy payload cannot bloat every downstream document): at most ``MAX_LABELS`` labels per incident,
label keys cut to ``MAX_LABEL_KEY`` and values to ``MAX_LABEL_VALUE`` characters, titles to ``MAX_TITLE``. The
labels a source derives itself are always kept; the vendor's free-form ones (tags, details, custom fields) fill the
remaining room in key order, and ``LABELS_DROPPED`` says how many did not fit.
"""

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from schemas import IncidentClosed, TimelineEntry
from services.ingest.sources._parsing import describe

MAX_LABELS = 64
MAX_LABEL_KEY = 200
MAX_LABEL_VALUE = 1_000
MAX_TITLE = 2_000
MAX_INCIDENT_ID = 500
MAX_TIMELINE_KIND = 200
MAX_TIMELINE_MESSAGE = 10_000
LABELS_DROPPED = "incident_lessons_labels_dropped"
"""Label added when a vendor sent more labels than fit: how many were left out (never silently)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_TEXT = re.compile(r"\d{1,21}(?:\.\d{1,9})?")
_MAX_EPOCH_INT = 10**21


class PayloadError(Exception):
    """Why a payload cannot become an incident, naming the field; the source returns it as ``Invalid``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


# --- text and structure -------------------------------------------------------------------------------------------


def clean(value: str) -> str:
    """The text with lone UTF-16 surrogates (legal in JSON escapes, not in UTF-8) replaced, so it can be encoded."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def quoted(value: str) -> str:
    """A vendor value for a reason: quoted and short, since reasons travel in DLQ headers and logs."""
    return repr(truncate(value, 80))


def text(value: Any) -> str | None:
    """A non-empty, stripped string from a string or a finite number; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_EPOCH_INT else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    stripped = clean(value).strip()
    return stripped or None


def required_text(value: Any, field: str) -> str:
    found = text(value)
    if found is None:
        raise PayloadError(field, "required, a non-empty string")
    return found


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one when the vendor sent something else (for optional, decorative parts)."""
    return value if isinstance(value, dict) else {}


def required_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field, "required, a JSON object")
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects in a list (anything else in it, or a non-list, is skipped)."""
    return [item for item in as_list(value) if isinstance(item, dict)]


def texts(values: Iterable[Any]) -> list[str]:
    """The non-empty strings among ``values``, in order."""
    return [found for found in (text(value) for value in values) if found is not None]


# --- time -----------------------------------------------------------------------------------------------------------


def iso_instant(value: Any) -> datetime | None:
    """An ISO 8601 time that carries an offset (``Z`` or ``+02:00``), in UTC; ``None`` otherwise.

    A time without an offset is refused rather than guessed: the vendors here all document UTC offsets.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _epoch_number(value: Any) -> Decimal | None:
    """A positive, finite number of bounded size from a JSON number or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and (not math.isfinite(value) or not 0 < value < _MAX_EPOCH_INT):
        return None
    if isinstance(value, int | float):
        return Decimal(value)
    if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value.strip()):
        number = Decimal(value.strip())
        return number if number > 0 else None
    return None


def epoch_instant(value: Any) -> datetime | None:
    """An epoch number (or a string of digits) in UTC, its unit told by its size; ``None`` otherwise.

    Opsgenie sends ``createdAt`` in milliseconds but ``updatedAt`` in nanoseconds, Datadog sends milliseconds, and
    people paste seconds, so the unit is inferred: below 1e11 seconds, below 1e14 milliseconds, below 1e17
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
        return _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        return None


def instant(value: Any) -> datetime | None:
    """Either form: an ISO 8601 time with an offset, or an epoch number."""
    return iso_instant(value) or epoch_instant(value)


# --- labels ---------------------------------------------------------------------------------------------------------


def label_text(value: Any) -> str | None:
    """A label value as text (scalars as written, lists of scalars comma-joined, structures as compact JSON)."""
    if value is None:
        return None
    if isinstance(value, str):
        rendered = clean(value)
    elif isinstance(value, bool):
        rendered = "true" if value else "false"
    elif isinstance(value, int | float):
        rendered = text(value) or str(value)
    elif isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        rendered = ",".join(texts(value))
    else:
        try:
            rendered = clean(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
        except (ValueError, TypeError, RecursionError):
            return None
    return truncate(rendered, MAX_LABEL_VALUE)


def object_labels(value: Any) -> dict[str, str]:
    """A vendor's key/value map as labels; anything that is not an object gives none."""
    labels: dict[str, str] = {}
    for key, item in as_object(value).items():
        name = text(key)
        rendered = label_text(item)
        if name is not None and rendered is not None:
            labels.setdefault(name, rendered)
    return labels


def split_tags(tags: Iterable[Any]) -> tuple[dict[str, str], list[str]]:
    """``key:value`` tags as labels (the first value of a key wins) and the plain tags left over."""
    pairs: dict[str, str] = {}
    plain: list[str] = []
    for tag in texts(tags):
        key, separator, value = tag.partition(":")
        if separator and key.strip():
            pairs.setdefault(key.strip(), value.strip())
        else:
            plain.append(tag)
    return pairs, plain


def comma_separated(value: Any) -> list[str]:
    """``"env:prod, service:api"`` as ``["env:prod", "service:api"]``; a JSON list is taken as is."""
    if isinstance(value, list):
        return texts(value)
    found = text(value)
    return [] if found is None else texts(found.split(","))


def bound_labels(own: Mapping[str, str], vendor: Mapping[str, str]) -> dict[str, str]:
    """At most ``MAX_LABELS`` labels: all of ``own`` (what the source derived), then ``vendor`` labels in key order.

    When vendor labels are left out, ``LABELS_DROPPED`` says how many, and counts towards the limit.
    """
    kept: dict[str, str] = {}
    for key, value in own.items():
        if len(kept) < MAX_LABELS:
            kept[truncate(clean(key), MAX_LABEL_KEY)] = truncate(clean(value), MAX_LABEL_VALUE)
    candidates: dict[str, str] = {}
    for key in sorted(vendor):
        name = truncate(clean(key), MAX_LABEL_KEY)
        if name not in kept and name not in candidates:
            candidates[name] = truncate(clean(vendor[key]), MAX_LABEL_VALUE)
    room = MAX_LABELS - len(kept)
    if len(candidates) <= room:
        kept.update(candidates)
        return kept
    room = max(room - 1, 0)  # one slot to say how many were left out
    kept.update(list(candidates.items())[:room])
    kept[LABELS_DROPPED] = str(len(candidates) - room)
    return kept


# --- the incident ---------------------------------------------------------------------------------------------------


def timeline_entry(at: datetime, kind: str, message: str = "", actor: str | None = None) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind=truncate(clean(kind).strip(), MAX_TIMELINE_KIND) or "event",
        message=truncate(clean(message), MAX_TIMELINE_MESSAGE),
        actor=truncate(clean(actor), MAX_LABEL_KEY) if actor else None,
    )


def closed_incident(
    *,
    source: str,
    source_incident_id: str,
    id_field: str,
    title: str,
    resolved_at: datetime,
    started_at: datetime | None,
    timeline: Iterable[TimelineEntry],
    **fields: Any,
) -> IncidentClosed:
    """``IncidentClosed.create`` with the bounds applied and any validation failure as a ``PayloadError``.

    An id is never cut (two incidents could merge), so an over-long one is refused, naming ``id_field``. A start
    after the resolution (clock skew, or a hand-edited timestamp) is dropped rather than losing the closure; the
    timeline still shows it.
    """
    if len(source_incident_id) > MAX_INCIDENT_ID:
        raise PayloadError(id_field, f"longer than {MAX_INCIDENT_ID} characters")
    if started_at is not None and started_at > resolved_at:
        started_at = None
    try:
        return IncidentClosed.create(
            source=source,
            source_incident_id=clean(source_incident_id),
            resolved_at=resolved_at,
            title=truncate(clean(title), MAX_TITLE),
            started_at=started_at,
            timeline=tuple(sorted(timeline, key=lambda entry: entry.at)),
            **fields,
        )
    except ValidationError as exc:
        raise PayloadError("incident", describe(exc)) from None
    except UnicodeError:
        raise PayloadError("incident", "text that is not valid Unicode") from None
