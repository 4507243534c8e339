"""The closed incident a source builds: ``IncidentClosed`` with its text bounded, invalid as ``PayloadError``."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import IncidentClosed, TimelineEntry, validation_summary
from services.ingest.sources._reading import PayloadError, clean, truncate

MAX_TITLE = 2_000
MAX_INCIDENT_ID = 500
MAX_TIMELINE_KIND = 200
MAX_TIMELINE_MESSAGE = 10_000
MAX_ACTOR = 200
MAX_TIMELINE_ENTRIES = 100
TIMELINE_OMITTED = "timeline entries omitted"
"""The kind of the entry that stands where entries were left out of a timeline longer than ``MAX_TIMELINE_ENTRIES``."""


def timeline_entry(at: datetime, kind: str, message: str = "", actor: str | None = None) -> TimelineEntry:
    """One timeline entry, its text cleaned and cut to the contract's bounds (an empty kind is ``event``).

    A time the contract refuses (outside the accepted years) is a ``PayloadError`` naming the timeline, never an
    exception escaping the source.
    """
    try:
        return TimelineEntry(
            at=at,
            kind=truncate(clean(kind).strip(), MAX_TIMELINE_KIND) or "event",
            message=truncate(clean(message), MAX_TIMELINE_MESSAGE),
            actor=truncate(clean(actor), MAX_ACTOR) if actor else None,
        )
    except ValidationError as exc:
        raise PayloadError("timeline", validation_summary(exc)) from None


def bounded_timeline(entries: Iterable[TimelineEntry]) -> tuple[TimelineEntry, ...]:
    """The entries in time order, at most ``MAX_TIMELINE_ENTRIES`` of them.

    A longer timeline keeps its earliest and latest entries (how it started, how it ended) and, in place of the
    middle, one ``TIMELINE_OMITTED`` entry saying how many were left out: never silently.
    """
    ordered = sorted(entries, key=lambda entry: entry.at)
    if len(ordered) <= MAX_TIMELINE_ENTRIES:
        return tuple(ordered)
    head = (MAX_TIMELINE_ENTRIES - 1) // 2
    tail = MAX_TIMELINE_ENTRIES - 1 - head
    omitted = ordered[head : len(ordered) - tail]
    note = TimelineEntry(
        at=omitted[0].at,
        kind=TIMELINE_OMITTED,
        message=f"{len(omitted)} entries left out: at most {MAX_TIMELINE_ENTRIES} are kept, the earliest and latest",
    )
    return (*ordered[:head], note, *ordered[len(ordered) - tail :])


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
    timeline still shows it. Sources for which such a start is an error check it before calling this.
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
            timeline=bounded_timeline(timeline),
            **fields,
        )
    except ValidationError as exc:
        raise PayloadError("incident", validation_summary(exc)) from None
