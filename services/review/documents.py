"""How reviews and their outbox entries are stored in MongoDB: their documents, and the listing's query.

A review is stored as its model's fields with ``id`` as ``_id``. Fields added later carry defaults in the model, so
documents written by an older version still load. ``docs/review.md`` shows the shape.
"""

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from schemas import ActionItemStatus, ReviewEvent, ReviewStatus, Severity
from services.review.domain.list_filter import Candidates, candidates_for
from services.review.domain.outbox_order import order_key
from services.review.domain.record import Review
from services.review.domain.workflow import BEFORE_PUBLICATION
from services.review.ports import ActionItemFilter, OutboxEntry, OutboxEvent, ReviewFilter

# Action items still to be done; past their due date they are overdue.
UNFINISHED_ACTION_ITEMS = (ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS)

Document = dict[str, Any]


def review_to_document(review: Review) -> Document:
    document = review.model_dump(mode="python")
    document["_id"] = document.pop("id")
    return document


def review_from_document(document: Document) -> Review:
    fields = dict(document)
    fields["id"] = fields.pop("_id")
    return Review.model_validate(fields)


def filter_query(where: ReviewFilter, now: datetime) -> Document:
    """The MongoDB query for a listing's filter (``overdue`` judged at ``now``)."""
    query: Document = {}
    if where.assigned_to is not None:
        query["$or"] = [{"owner": where.assigned_to}, {"participants.name": where.assigned_to}]
    statuses = set(where.statuses)
    if where.overdue is True:
        # ``is_overdue`` as plain conditions on status and due date (a missing due date never compares as before a
        # date), no ``$and``: a server then answers it from the ``status_due`` index instead of reading every review.
        statuses = statuses & BEFORE_PUBLICATION if statuses else set(BEFORE_PUBLICATION)
        query["due_at"] = {"$lte": now}
    if statuses:
        query["status"] = {"$in": sorted(str(status) for status in statuses)}
    elif where.statuses:
        query["status"] = {"$in": []}  # asked for statuses none of which can be overdue
    if where.severities:
        query["incident.severity"] = {"$in": [str(severity) for severity in where.severities]}
    if where.service is not None:
        query["incident.service"] = where.service
    if where.team is not None:
        query["incident.team"] = where.team
    if where.title_contains:
        # Escaped: the text is searched for as typed, never interpreted as a pattern.
        query["incident.title"] = {"$regex": re.escape(where.title_contains), "$options": "i"}
    if where.overdue is False:
        # Not ``is_overdue`` (a missing due date never compares as before a date).
        query["$nor"] = [
            {"due_at": {"$lte": now}, "status": {"$in": sorted(str(status) for status in BEFORE_PUBLICATION)}}
        ]
    return query


def candidate_queries(where: ReviewFilter, now: datetime) -> list[Document]:
    """Plain queries on the filter's candidate condition (``domain.list_filter.candidates_for``) whose union holds
    every review the filter matches; an empty list: it matches nothing.

    Each holds one indexed condition only, an equality, so that the server reads it from an index ending in
    ``list_position`` (with the listing's range of positions), or ``status_due`` for overdue; ``matches`` decides the
    rest. SecantusDB scans the collection for ``$in`` with a range: statuses are asked one by one.
    """
    kind = candidates_for(where)
    if kind is Candidates.OVERDUE:
        statuses = set(BEFORE_PUBLICATION) & set(where.statuses) if where.statuses else set(BEFORE_PUBLICATION)
        if not statuses:
            return []  # asked for statuses none of which can be overdue
        return [{"status": str(status), "due_at": {"$lte": now}} for status in sorted(statuses)]
    by_kind: dict[Candidates, list[Document]] = {
        Candidates.ASSIGNED: [{"owner": where.assigned_to}, {"participants.name": where.assigned_to}],
        Candidates.SERVICE: [{"incident.service": where.service}],
        Candidates.TEAM: [{"incident.team": where.team}],
        Candidates.STATUS: [{"status": str(status)} for status in sorted(set(where.statuses))],
    }
    return by_kind.get(kind, [{}])


def counted_groups(where: ReviewFilter) -> list[tuple[str, str]] | None:
    """The (status, severity) groups whose stored counts add up to the filter's total; None when counts cannot tell
    (any condition besides status and severity)."""
    if (
        where.overdue is not None
        or where.service is not None
        or where.team is not None
        or where.title_contains
        or where.assigned_to is not None
    ):
        return None
    statuses = dict.fromkeys(where.statuses or ReviewStatus)
    severities = dict.fromkeys(where.severities or Severity)
    return [(str(status), str(severity)) for status in statuses for severity in severities]


def action_item_query(where: ActionItemFilter, now: datetime, prefix: str) -> Document:
    """The conditions on one action item, its fields under ``prefix`` (``action_items.`` after ``$unwind``)."""
    query: Document = {f"{prefix}status": {"$in": [str(status) for status in UNFINISHED_ACTION_ITEMS]}}
    if where.owner is not None:
        query[f"{prefix}owner"] = where.owner
    if where.categories:
        query[f"{prefix}category"] = {"$in": [str(category) for category in where.categories]}
    if where.priorities:
        query[f"{prefix}priority"] = {"$in": [str(priority) for priority in where.priorities]}
    if where.overdue_only:
        # Overdue as for reviews: due at or before now and still to be done.
        query[f"{prefix}due_at"] = {"$lte": now}
    return query


# An outbox entry's sending order as one string (``domain/outbox_order.py``); missing on entries written before it.
OUTBOX_ORDER = "order"
# An outbox entry's events, in the order they are published; missing on entries written before grouping, which hold
# one event each (``event_type`` and ``payload`` at the top, the event id as ``_id``).
OUTBOX_EVENTS = "events"


def outbox_documents(written: Iterable[tuple[ReviewEvent, int, datetime]], topic: str) -> list[Document]:
    """One transaction's outbox entries: one per review it changes, holding that review's events in their order.

    ``written``: the transaction's events in order, each with its position in the change that wrote it (``seq``) and
    the time of that change. An entry takes its ``_id`` (unique: event ids are), ``version``, ``seq``, ``created_at``
    and order key from its review's first event, so entries sort among each other as their first events did; the
    review's later events of the transaction follow it inside the entry.
    """
    entries: dict[str, Document] = {}
    for event, seq, at in written:
        event_id = str(event.event_id)
        stored_event = {
            "event_id": event_id,
            "event_type": type(event).__name__,
            "payload": event.model_dump_json(),
            "version": event.version,
        }
        entry = entries.get(event.review_id)
        if entry is not None:
            entry[OUTBOX_EVENTS].append(stored_event)
            continue
        entries[event.review_id] = {
            "_id": event_id,
            "topic": topic,
            "key": event.review_id,
            OUTBOX_EVENTS: [stored_event],
            "version": event.version,
            # Orders the events of one change (e.g. ReviewOpened before ReviewRecurred at the same version).
            "seq": seq,
            "created_at": at,
            # Sorts as (created_at, version, seq, _id): the relay reads the oldest pending entries from one index.
            OUTBOX_ORDER: order_key(at, event.version, seq, event_id),
            "sent_at": None,
        }
    return list(entries.values())


def outbox_entry_of(document: Document) -> OutboxEntry:
    """A stored entry with its events in publishing order; an entry written before grouping holds one, at its top
    level, its ``_id`` the event's id."""
    topic, key = document["topic"], document["key"]
    stored = document.get(OUTBOX_EVENTS)
    if stored is None:
        stored = [{"event_id": document["_id"], "event_type": document["event_type"], "payload": document["payload"]}]
    events = tuple(
        OutboxEvent(str(event["event_id"]), topic, key, event["event_type"], event["payload"]) for event in stored
    )
    return OutboxEntry(str(document["_id"]), topic, key, events, outbox_order_of(document))


def outbox_order_of(document: Document) -> str:
    """An entry's order key: the stored one, or for an entry written before keys existed, the one it would have."""
    stored = document.get(OUTBOX_ORDER)
    if isinstance(stored, str):
        return stored
    return order_key(document["created_at"], int(document["version"]), int(document["seq"]), str(document["_id"]))
