"""A listing's filter, and deciding it on a review's stored fields without the server.

The list reads candidates by one indexed condition of the filter (the server uses an index only for a query whose
every field is in it, so the other conditions would cost a collection scan) and decides the rest here, on the fields
``FILTER_FIELDS`` projects. ``matches`` answers as the server answers ``documents.filter_query`` (checked on the
real server by ``tests/integration/review/test_list_filter.py``): the same comparisons, missing fields never equal
or before anything, the title searched as ``$regex`` with ``$options: "i"`` searches.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from schemas import ReviewStatus, Severity
from services.review.domain.workflow import BEFORE_PUBLICATION


@dataclass(frozen=True)
class ReviewFilter:
    """Which reviews a listing shows; every field given narrows it."""

    statuses: Sequence[ReviewStatus] = ()
    severities: Sequence[Severity] = ()
    service: str | None = None
    team: str | None = None
    overdue: bool | None = None
    title_contains: str | None = None
    # Reviews this person facilitates (owner) or takes part in (a participant's name).
    assigned_to: str | None = None


# The stored fields ``matches`` looks at (a projection), with ``list_position`` to order them.
FILTER_FIELDS = (
    "list_position",
    "status",
    "due_at",
    "owner",
    "participants.name",
    "incident.severity",
    "incident.service",
    "incident.team",
    "incident.title",
)


class Candidates(Enum):
    """Which indexed condition the candidates are read by, most selective first (in the order tried)."""

    OVERDUE = "overdue"  # status before publication and due at or before now: few, read all at once
    ASSIGNED = "assigned"  # owner, and participant: two reads
    SERVICE = "service"
    TEAM = "team"
    STATUS = "status"
    EVERY = "every"  # no indexed condition: the list's order alone


def candidates_for(where: ReviewFilter) -> Candidates:
    """The condition to read candidates by: the one expected to match fewest reviews.

    Overdue reviews are few in a list that is looked after; one person takes part in few reviews; a service is a
    narrower part of the list than a team (a team runs several services); a status is a large part of it.
    """
    if where.overdue is True:
        return Candidates.OVERDUE
    if where.assigned_to is not None:
        return Candidates.ASSIGNED
    if where.service is not None:
        return Candidates.SERVICE
    if where.team is not None:
        return Candidates.TEAM
    if where.statuses:
        return Candidates.STATUS
    return Candidates.EVERY


def is_whole_filter(where: ReviewFilter) -> bool:
    """Whether the candidate condition is the whole filter: then every candidate matches."""
    return where == ReviewFilter() or where == ReviewFilter(statuses=where.statuses)


def matches(where: ReviewFilter, fields: Mapping[str, Any], now: datetime) -> bool:
    """Whether a review with these stored fields (as ``FILTER_FIELDS`` projects them) is in the filter at ``now``."""
    status = fields.get("status")
    incident = fields.get("incident")
    incident = incident if isinstance(incident, Mapping) else {}
    person = where.assigned_to
    return all(
        (
            person is None or fields.get("owner") == person or person in _participant_names(fields),
            not where.statuses or status in {str(asked) for asked in where.statuses},
            where.overdue is None or _overdue(status, fields.get("due_at"), now) == where.overdue,
            not where.severities or incident.get("severity") in {str(asked) for asked in where.severities},
            where.service is None or incident.get("service") == where.service,
            where.team is None or incident.get("team") == where.team,
            not where.title_contains or _contains(incident.get("title"), where.title_contains),
        )
    )


def _contains(title: object, text: str) -> bool:
    # As the server's ``$regex`` of the escaped text with ``$options: "i"``.
    return isinstance(title, str) and re.search(re.escape(text), title, re.IGNORECASE) is not None


def _overdue(status: object, due_at: object, now: datetime) -> bool:
    # Stored dates have milliseconds: ``now`` is compared as the server receives it.
    if not isinstance(due_at, datetime) or status not in {str(before) for before in BEFORE_PUBLICATION}:
        return False
    return _utc(due_at) <= _utc(now).replace(microsecond=now.microsecond // 1000 * 1000)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _participant_names(fields: Mapping[str, Any]) -> list[object]:
    participants = fields.get("participants")
    if not isinstance(participants, list):
        return []
    return [participant.get("name") for participant in participants if isinstance(participant, Mapping)]
