"""MongoDB adapter for reviews and their outbox.

Every change to a review and the events announcing it are written in one transaction, so neither exists without
the other. A change is a conditional update on the version the writer read (``{_id, version: read}`` with
``$inc: {version: 1}``): when someone else wrote first, nothing matches and the writer learns the current version
instead of overwriting their change.

Finding a recurrence's earlier occurrence costs the same however many reviews are stored: each recurrence group
(fingerprint, or service and normalised title) has a small head document in ``review_recurrence_heads`` naming its
latest occurrence, kept in the transaction that opens a review. The head answers the look-up with two reads by id
whenever it lies in the window; only an incident resolved before its group's latest one (it arrived late) or a group
stored before heads existed asks the index, whose filter and sort it matches (MongoDB stops after the first entries;
a server that does not stop early scans the group's entries in the window).
"""

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pymongo
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from schemas import ActionItemCategory, ActionItemPriority, ActionItemStatus, ReviewEvent, ReviewStatus, Severity
from services.review.domain.record import ActionItem, Review
from services.review.domain.recurrence import (
    RecurrenceGroup,
    RecurrenceQuery,
    occurrence_order,
    recurrence_groups,
)

REVIEWS = "reviews"
OUTBOX = "review_outbox"
RELAY_LEASE = "review_outbox_lease"
RECURRENCE_HEADS = "review_recurrence_heads"
INDEX_NOT_FOUND = 27

# Latest occurrence first (see ``occurrence_order``): the recurrence indexes end in these keys, so they serve the sort.
LATEST_OCCURRENCE_FIRST = [("incident.resolved_at", DESCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
# Indexes replaced by ones that serve a whole sort (with its tie-break): dropped so writes do not maintain both.
REPLACED_INDEXES = {
    REVIEWS: ("recurrence_fingerprint", "recurrence_service_title"),
    OUTBOX: ("unsent_in_version_order",),
}

Document = dict[str, Any]
T = TypeVar("T")

# Statuses in which a review is still being written: past its due date there, it is overdue.
UNFINISHED = (ReviewStatus.OPEN, ReviewStatus.IN_REVIEW)


class ReviewNotFoundError(LookupError):
    pass


class StaleVersionError(Exception):
    """The review changed since the writer read it."""

    def __init__(self, review_id: str, read_version: int, current_version: int) -> None:
        super().__init__(f"review {review_id} is at version {current_version}, not {read_version}")
        self.review_id = review_id
        self.read_version = read_version
        self.current_version = current_version


@dataclass(frozen=True)
class OutboxEntry:
    event_id: str
    topic: str
    key: str
    payload: str
    event_type: str


@dataclass(frozen=True)
class ReviewFilter:
    statuses: Sequence[ReviewStatus] = ()
    severities: Sequence[Severity] = ()
    service: str | None = None
    team: str | None = None
    overdue: bool | None = None
    title_contains: str | None = None
    # Reviews this person facilitates (owner) or takes part in (a participant's name).
    assigned_to: str | None = None

    def query(self, now: datetime) -> Document:
        query: Document = {}
        if self.assigned_to is not None:
            query["$or"] = [{"owner": self.assigned_to}, {"participants.name": self.assigned_to}]
        if self.statuses:
            query["status"] = {"$in": [str(status) for status in self.statuses]}
        if self.severities:
            query["incident.severity"] = {"$in": [str(severity) for severity in self.severities]}
        if self.service is not None:
            query["incident.service"] = self.service
        if self.team is not None:
            query["incident.team"] = self.team
        if self.title_contains:
            # Escaped: the text is searched for as typed, never interpreted as a pattern.
            query["incident.title"] = {"$regex": re.escape(self.title_contains), "$options": "i"}
        overdue = {"due_at": {"$lt": now}, "status": {"$in": [str(status) for status in UNFINISHED]}}
        if self.overdue is True:
            query["$and"] = [overdue]
        elif self.overdue is False:
            query["$nor"] = [overdue]
        return query


# Action items still to be done; past their due date they are overdue.
UNFINISHED_ACTION_ITEMS = (ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS)


@dataclass(frozen=True)
class ActionItemFilter:
    """Unfinished action items across reviews: of one owner, one team (the incident's), category or priority."""

    owner: str | None = None
    team: str | None = None
    categories: Sequence[ActionItemCategory] = ()
    priorities: Sequence[ActionItemPriority] = ()
    overdue_only: bool = False

    def item_query(self, now: datetime, prefix: str) -> Document:
        """The conditions on one action item, its fields under ``prefix`` (``action_items.`` after ``$unwind``)."""
        query: Document = {f"{prefix}status": {"$in": [str(status) for status in UNFINISHED_ACTION_ITEMS]}}
        if self.owner is not None:
            query[f"{prefix}owner"] = self.owner
        if self.categories:
            query[f"{prefix}category"] = {"$in": [str(category) for category in self.categories]}
        if self.priorities:
            query[f"{prefix}priority"] = {"$in": [str(priority) for priority in self.priorities]}
        if self.overdue_only:
            query[f"{prefix}due_at"] = {"$lt": now}
        return query


@dataclass(frozen=True)
class ActionItemRow:
    """One unfinished action item and the review it belongs to."""

    review_id: str
    review_title: str
    team: str | None
    item: ActionItem


def _group_filter(group: RecurrenceGroup) -> Document:
    if group.matched_on == "fingerprint":
        return {"incident.fingerprint": group.fingerprint}
    return {"incident.service": group.service, "title_key": group.title_key}


def _head(document: Document) -> Document:
    """A group's head: its latest occurrence, by the fields ``occurrence_order`` compares."""
    return {
        "review_id": document["_id"],
        "resolved_at": document["incident"]["resolved_at"],
        "created_at": document["created_at"],
    }


def _head_order(head: Document) -> tuple[datetime, datetime, str]:
    return occurrence_order(head["resolved_at"], head["created_at"], head["review_id"])


def _outbox_entry(event: ReviewEvent, topic: str, seq: int, now: datetime) -> Document:
    return {
        "_id": str(event.event_id),
        "topic": topic,
        "key": event.review_id,
        "event_type": type(event).__name__,
        "payload": event.model_dump_json(),
        "version": event.version,
        # Orders the events one transaction writes (e.g. ReviewOpened before ReviewRecurred at the same version).
        "seq": seq,
        "created_at": now,
        "sent_at": None,
    }


# How long one transaction may take, its retries included. Ours take milliseconds; a write conflict with a transaction
# that a crashed replica left open lasts until the server aborts it (60 s by default), and the driver alone would retry
# for up to 120 s. See docs/operations.md.
TRANSACTION_TIME_LIMIT_SECONDS = 10.0


class ReviewRepository:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        transaction_time_limit_seconds: float = TRANSACTION_TIME_LIMIT_SECONDS,
    ) -> None:
        self._client = database.client
        self._transaction_time_limit_seconds = transaction_time_limit_seconds
        self.reviews: AsyncCollection[Document] = database[REVIEWS]
        self.outbox: AsyncCollection[Document] = database[OUTBOX]
        self.relay_lease: AsyncCollection[Document] = database[RELAY_LEASE]
        self.recurrence_heads: AsyncCollection[Document] = database[RECURRENCE_HEADS]

    async def ensure_indexes(self) -> None:
        await self.reviews.create_index([("incident_key", ASCENDING)], unique=True, name="one_review_per_incident")
        await self.reviews.create_index([("status", ASCENDING), ("due_at", ASCENDING)], name="status_due")
        await self.reviews.create_index([("created_at", DESCENDING), ("_id", ASCENDING)], name="newest_first")
        await self.reviews.create_index([("owner", ASCENDING), ("created_at", DESCENDING)], name="by_owner")
        await self.reviews.create_index(
            [("participants.name", ASCENDING), ("created_at", DESCENDING)], name="by_participant"
        )
        await self.reviews.create_index(
            [("action_items.status", ASCENDING), ("action_items.due_at", ASCENDING)], name="unfinished_action_items"
        )
        await self.reviews.create_index(
            [("incident.fingerprint", ASCENDING), *LATEST_OCCURRENCE_FIRST], name="recurrence_by_fingerprint"
        )
        await self.reviews.create_index(
            [("incident.service", ASCENDING), ("title_key", ASCENDING), *LATEST_OCCURRENCE_FIRST],
            name="recurrence_by_service_and_title",
        )
        await self.outbox.create_index(
            [
                ("sent_at", ASCENDING),
                ("created_at", ASCENDING),
                ("version", ASCENDING),
                ("seq", ASCENDING),
                ("_id", ASCENDING),
            ],
            name="unsent_in_order",
        )
        for collection in (self.reviews, self.outbox):
            for name in REPLACED_INDEXES[collection.name]:
                try:
                    await collection.drop_index(name)
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:
                        raise

    async def _in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction; pymongo's ``ExecutionTimeout`` if it cannot finish within the time limit.

        with_transaction retries on transient errors (a write conflict with a concurrent transaction): the retry
        re-reads and then fails the version check, which is the answer the losing writer should get. The time limit
        (the driver's timeoutMS) bounds the retries and gives every statement and the commit a maxTimeMS.
        """
        with pymongo.timeout(self._transaction_time_limit_seconds):
            async with self._client.start_session() as session:
                return await session.with_transaction(work)

    async def _write_events(
        self, session: AsyncClientSession, events: Sequence[ReviewEvent], topic: str, now: datetime
    ) -> None:
        await self.outbox.insert_many(
            [_outbox_entry(event, topic, seq, now) for seq, event in enumerate(events)], session=session
        )

    async def _update(self, session: AsyncClientSession, review: Review, read_version: int) -> None:
        if review.version != read_version + 1:
            raise ValueError(f"a change must move review {review.id} from version {read_version} to the next")
        fields = review.to_document()
        del fields["_id"], fields["version"]
        result = await self.reviews.update_one(
            {"_id": review.id, "version": read_version},
            {"$set": fields, "$inc": {"version": 1}},
            session=session,
        )
        if result.matched_count == 0:
            await self._stale(session, review.id, read_version)

    async def _stale(self, session: AsyncClientSession, review_id: str, read_version: int) -> None:
        current = await self.reviews.find_one({"_id": review_id}, {"version": 1}, session=session)
        if current is None:
            raise ReviewNotFoundError(review_id)
        raise StaleVersionError(review_id, read_version, int(current["version"]))

    async def _link_earlier(
        self, session: AsyncClientSession, earlier: Review, read_version: int, recurrence_id: str
    ) -> None:
        """The earlier review (``earlier``: as linked, a version past ``read_version``) gains one related review.

        A bounded write: one id added, never the whole document rewritten, so linking costs the same however long
        the earlier review is.
        """
        if earlier.version != read_version + 1:
            raise ValueError(f"a change must move review {earlier.id} from version {read_version} to the next")
        result = await self.reviews.update_one(
            {"_id": earlier.id, "version": read_version},
            {
                "$addToSet": {"related_reviews": recurrence_id},
                "$set": {
                    "version": earlier.version,
                    "updated_at": earlier.updated_at,
                    "updated_by": earlier.updated_by,
                },
            },
            session=session,
        )
        if result.matched_count == 0:
            await self._stale(session, earlier.id, read_version)

    async def _advance_heads(self, session: AsyncClientSession, review: Review) -> None:
        """Make ``review`` the head of its recurrence groups where it is their latest occurrence."""
        for group in recurrence_groups(review):
            head = await self.recurrence_heads.find_one({"_id": group.key}, session=session)
            if head is None:
                # A group without a head (its reviews were stored before heads existed): its latest review, once.
                latest = await self.reviews.find_one(
                    _group_filter(group), sort=LATEST_OCCURRENCE_FIRST, session=session
                )
                if latest is None:
                    continue
                head = _head(latest)
            else:
                new = occurrence_order(review.incident.resolved_at, review.created_at, review.id)
                if new <= _head_order(head):
                    continue
                head = _head(review.to_document())
            await self.recurrence_heads.replace_one({"_id": group.key}, head, upsert=True, session=session)

    async def open_review(
        self,
        review: Review,
        events: Sequence[ReviewEvent],
        topic: str,
        now: datetime,
        *,
        linked_earlier: tuple[Review, int] | None = None,
    ) -> bool:
        """Store a new review, its events and (for a recurrence) the earlier review's link, atomically.

        ``linked_earlier``: the earlier review as linked and the version it was read at; only the link is written.
        False if the incident already has a review: a redelivered or duplicate incident changes nothing.
        """

        async def work(session: AsyncClientSession) -> bool:
            try:
                await self.reviews.insert_one(review.to_document(), session=session)
            except DuplicateKeyError:
                await session.abort_transaction()
                return False
            if linked_earlier is not None:
                await self._link_earlier(session, *linked_earlier, recurrence_id=review.id)
            await self._advance_heads(session, review)
            await self._write_events(session, events, topic, now)
            return True

        return await self._in_transaction(work)

    async def save(
        self, review: Review, read_version: int, events: Sequence[ReviewEvent], topic: str, now: datetime
    ) -> None:
        """Store ``review`` (one version past ``read_version``) and its events; ``StaleVersionError`` if too late."""

        async def work(session: AsyncClientSession) -> None:
            await self._update(session, review, read_version)
            await self._write_events(session, events, topic, now)

        await self._in_transaction(work)

    async def get(self, review_id: str) -> Review | None:
        document = await self.reviews.find_one({"_id": review_id})
        return Review.from_document(document) if document is not None else None

    async def incident_keys_with_review(self, incident_keys: Iterable[str]) -> set[str]:
        """Those of ``incident_keys`` that have a review: one query (the unique index) for a batch of incidents."""
        keys = sorted(set(incident_keys))
        if not keys:
            return set()
        cursor = self.reviews.find({"incident_key": {"$in": keys}}, {"_id": 0, "incident_key": 1})
        return {document["incident_key"] async for document in cursor}

    async def find(self, where: ReviewFilter, now: datetime, *, limit: int, offset: int) -> tuple[list[Review], int]:
        """One page of reviews, newest first, and how many match in all."""
        query = where.query(now)
        total = await self.reviews.count_documents(query)
        cursor = self.reviews.find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        documents = await cursor.skip(offset).limit(limit).to_list(length=limit)
        return [Review.from_document(document) for document in documents], total

    async def unfinished_action_items(
        self, where: ActionItemFilter, now: datetime, *, limit: int, offset: int
    ) -> tuple[list[ActionItemRow], int]:
        """Unfinished action items across reviews, soonest due first (no due date last), and how many match.

        Only reviews holding a matching item are read (the ``unfinished_action_items`` index serves the first match);
        their items are then unwound and matched one by one.
        """
        review_match: Document = {"action_items": {"$elemMatch": where.item_query(now, "")}}
        if where.team is not None:
            review_match["incident.team"] = where.team
        pipeline: list[Document] = [
            {"$match": review_match},
            {"$project": {"incident.title": 1, "incident.team": 1, "action_items": 1}},
            {"$unwind": "$action_items"},
            {"$match": where.item_query(now, "action_items.")},
            # Items without a due date sort last: a flag first, then the date.
            {"$addFields": {"no_due": {"$eq": [{"$ifNull": ["$action_items.due_at", None]}, None]}}},
            {"$sort": {"no_due": 1, "action_items.due_at": 1, "_id": 1, "action_items.id": 1}},
            {"$facet": {"page": [{"$skip": offset}, {"$limit": limit}], "total": [{"$count": "n"}]}},
        ]
        result = await (await self.reviews.aggregate(pipeline)).to_list()
        facet = result[0] if result else {"page": [], "total": []}
        rows = [
            ActionItemRow(
                review_id=document["_id"],
                review_title=document["incident"]["title"],
                team=document["incident"].get("team"),
                item=ActionItem.model_validate(document["action_items"]),
            )
            for document in facet["page"]
        ]
        total = int(facet["total"][0]["n"]) if facet["total"] else 0
        return rows, total

    async def earlier_occurrence(self, query: RecurrenceQuery) -> Review | None:
        """The latest earlier review matching by fingerprint, else by service and normalised title."""
        for group in query.groups:
            found = await self._latest_in(group, query)
            if found is not None:
                return found
        return None

    async def _latest_in(self, group: RecurrenceGroup, query: RecurrenceQuery) -> Review | None:
        head = await self.recurrence_heads.find_one({"_id": group.key})
        if head is not None and head["review_id"] != query.review_id and head["resolved_at"] <= query.until:
            if head["resolved_at"] < query.since:
                return None  # the group's latest occurrence is older than the window: so is every other
            document = await self.reviews.find_one({"_id": head["review_id"]})
            if document is not None:
                return Review.from_document(document)
        # No head yet, or this incident was resolved before its group's latest one: the index, latest first. Two
        # entries, because a redelivered incident finds its own review (which it must not link to).
        cursor = (
            self.reviews.find(
                {**_group_filter(group), "incident.resolved_at": {"$gte": query.since, "$lte": query.until}}
            )
            .sort(LATEST_OCCURRENCE_FIRST)
            .limit(2)
        )
        async for document in cursor:
            if document["_id"] != query.review_id:
                return Review.from_document(document)
        return None

    async def unsent(self, limit: int) -> list[OutboxEntry]:
        cursor = (
            self.outbox.find({"sent_at": None})
            .sort([("created_at", ASCENDING), ("version", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [
            OutboxEntry(
                event_id=doc["_id"],
                topic=doc["topic"],
                key=doc["key"],
                payload=doc["payload"],
                event_type=doc["event_type"],
            )
            async for doc in cursor
        ]

    async def mark_sent(self, event_ids: list[str], now: datetime) -> None:
        if event_ids:
            await self.outbox.update_many({"_id": {"$in": event_ids}, "sent_at": None}, {"$set": {"sent_at": now}})

    async def pending_count(self) -> int:
        return await self.outbox.count_documents({"sent_at": None})

    async def hold_relay_lease(self, holder: str, now: datetime, seconds: float) -> bool:
        """Take or renew the relay lease; False while another live relay holds it."""
        try:
            await self.relay_lease.update_one(
                {"_id": "relay", "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": holder, "until": now + timedelta(seconds=seconds)}},
                upsert=True,
            )
        except DuplicateKeyError:
            # The filter missed the existing lease (another holder, not expired), so the upsert tried to insert it.
            return False
        return True

    async def release_relay_lease(self, holder: str) -> None:
        await self.relay_lease.delete_one({"_id": "relay", "holder": holder})
