"""MongoDB adapter for reviews and their outbox.

Every change to a review and the events announcing it are written in one transaction, so neither exists without
the other. A change is a conditional update on the version the writer read (``{_id, version: read}`` with
``$inc: {version: 1}``): when someone else wrote first, nothing matches and the writer learns the current version
instead of overwriting their change.

Finding a recurrence's earlier occurrence costs the same however many reviews are stored: see ``recurrence_heads``.

The list reads a window of ``list_position`` (``domain.list_window``), not every review. Positions come from the
``list_position`` counter document, advanced in the transaction that opens the reviews, so position order is the
order reviews were opened in: the order of ``created_at`` too, which is taken just before (two replicas opening
reviews within the same moment may store them in either order; positions are unique, ``_id`` is a tie-break only for
safety). The same document counts reviews by status and severity, changed in the transactions that open reviews or
change their status, so an unfiltered or status/severity-only list has its exact total without a count query.
"""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import pymongo
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from schemas import ReviewEvent
from services.review.documents import (
    OUTBOX_ORDER,
    Document,
    action_item_query,
    candidate_queries,
    counted_groups,
    filter_query,
    outbox_documents,
    outbox_entry_of,
    outbox_order_of,
    review_from_document,
    review_to_document,
)
from services.review.domain.batch_opening import BatchOpening, LinkedEarlier
from services.review.domain.list_filter import FILTER_FIELDS, Candidates, candidates_for, is_whole_filter, matches
from services.review.domain.list_window import Window, positions_below, positions_for_batch, windows
from services.review.domain.record import ActionItem, Review
from services.review.domain.recurrence import RecurrenceQuery
from services.review.ports import (
    ActionItemFilter,
    ActionItemRow,
    OutboxEntry,
    ReviewFilter,
    ReviewNotFoundError,
    ReviewPage,
    StaleVersionError,
)
from services.review.recurrence_heads import LATEST_OCCURRENCE_FIRST, RecurrenceHeads

REVIEWS = "reviews"
OUTBOX = "review_outbox"
RELAY_LEASE = "review_outbox_lease"
RECURRENCE_HEADS = "review_recurrence_heads"
COUNTERS = "review_counters"
# The counter document: ``top`` (the highest position given), ``bottom`` (the lowest), ``counts`` (by status, then
# severity: reviews that have a position) and ``complete`` (every review stored before positions existed has one).
LIST_POSITION = "list_position"
# Reviews without a position get theirs in chunks of this many, one transaction each; a chunk whose reviews changed
# meanwhile is read and tried again up to this many times in all.
_POSITION_CHUNK = 500
_POSITION_ATTEMPTS = 3
_GROUP_FIELDS = {"created_at": 1, "status": 1, "incident.severity": 1}
# The list's order: highest position (newest) first.
LIST_ORDER = [("list_position", DESCENDING), ("_id", ASCENDING)]
INDEX_NOT_FOUND = 27
DUPLICATE_KEY = 11000

# The list's candidate conditions (``documents.candidate_queries``), each followed by ``list_position`` in its index.
LIST_CANDIDATE_INDEXES = {
    "list_by_owner": "owner",
    "list_by_participant": "participants.name",
    "list_by_service": "incident.service",
    "list_by_team": "incident.team",
    "list_by_status": "status",
}

# Indexes replaced by ones that serve a whole sort (with its tie-break), or by the list's candidate indexes (the list
# was their only reader): dropped so writes do not maintain both.
REPLACED_INDEXES = {
    REVIEWS: ("recurrence_fingerprint", "recurrence_service_title", "newest_first", "by_owner", "by_participant"),
    OUTBOX: ("unsent_in_version_order", "unsent_in_order"),
}

T = TypeVar("T")


class _ChunkChangedError(Exception):
    """Reviews of a chunk were positioned or changed status after they were read: read them again."""


def _count_field(status: object, severity: object) -> str:
    return f"counts.{status}.{severity}"


def _counts_by_group(groups: Iterable[tuple[object, object]]) -> dict[str, int]:
    """How many of these (status, severity) pairs fall in each group, as the counter document's ``$inc``."""
    return dict(Counter(_count_field(status, severity) for status, severity in groups))


def _group_of(document: Document) -> tuple[str, str]:
    return str(document["status"]), str(document["incident"]["severity"])


def _recurred_after_verification(earlier: Review, recurrence_id: str) -> Document:
    """The marks this recurrence put on the earlier review's items verified effective, set item by item (by position:
    the version check guarantees the list is as it was read), so linking stays a bounded write."""
    fields: Document = {}
    for position, item in enumerate(earlier.action_items):
        mark = item.recurred_after_verification
        if mark is not None and mark.review_id == recurrence_id:
            fields[f"action_items.{position}.recurred_after_verification"] = mark.model_dump()
            fields[f"action_items.{position}.updated_at"] = item.updated_at
    return fields


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
        # The batch-opening transaction and the relay's mark take turns within a replica. Overlapping them gains
        # nothing on a server that runs one command at a time, and on SecantusDB it costs: measured with the review
        # stage benchmark, its CPU per review inserted rose by 30 to 55% and per entry marked by 50 to 90% when a mark
        # ran while a batch's transaction was open (the same as the raw baseline's when they took turns).
        self._write_turn = asyncio.Lock()
        self.reviews: AsyncCollection[Document] = database[REVIEWS]
        self.outbox: AsyncCollection[Document] = database[OUTBOX]
        self.relay_lease: AsyncCollection[Document] = database[RELAY_LEASE]
        self.recurrence_heads: AsyncCollection[Document] = database[RECURRENCE_HEADS]
        self.counters: AsyncCollection[Document] = database[COUNTERS]
        self._recurrence = RecurrenceHeads(self.reviews, self.recurrence_heads)

    async def ensure_indexes(self) -> None:
        await self.reviews.create_index([("incident_key", ASCENDING)], unique=True, name="one_review_per_incident")
        await self.reviews.create_index([("status", ASCENDING), ("due_at", ASCENDING)], name="status_due")
        await self.reviews.create_index(LIST_ORDER, name="list_order")
        # The list's candidates by one condition, narrowed to a window of positions by the same index (``find_page``).
        for name, field in LIST_CANDIDATE_INDEXES.items():
            await self.reviews.create_index([(field, ASCENDING), (LIST_POSITION, DESCENDING)], name=name)
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
        # The pending entries in sending order, under one field: a server that serves only a one-field sort from an
        # index (SecantusDB) uses it as MongoDB does. Replaces ``unsent_in_order`` (created_at, version, seq, _id).
        await self.outbox.create_index([("sent_at", ASCENDING), (OUTBOX_ORDER, ASCENDING)], name="unsent_by_order")
        for collection in (self.reviews, self.outbox):
            for name in REPLACED_INDEXES[collection.name]:
                try:
                    await collection.drop_index(name)
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:
                        raise
        await self._recurrence.complete()

    async def position_unlisted(self) -> int:
        """Give every review without a list position its position and count; how many got one.

        Before the ``complete`` mark, the reviews stored before positions existed: older than any review opened since,
        they get positions below the lowest (``bottom``), newest first by ``created_at`` then ``_id``, and the mark is
        set. After it, reviews opened by a replica of the previous version during a rolling deploy: newer than most,
        they get positions above the highest (``top``), oldest first. Cheap when there is nothing to do: the query
        reads only the ``list_order`` index's range of reviews without a position.

        Each chunk takes its positions from the counter document, counts its reviews by the status and severity read
        and writes the positions on condition that status and severity are still those, in one transaction: a review
        is positioned and counted exactly once, and replicas doing this at the same time conflict and retry (the
        retry finds the reviews positioned and does nothing). A review whose status changed meanwhile is read again.
        """
        state = await self.counters.find_one_and_update(
            {"_id": LIST_POSITION},
            {"$setOnInsert": {"top": 0, "bottom": 1, "counts": {}}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        below = not (state or {}).get("complete")
        unlisted = await self.reviews.find({"list_position": None}, _GROUP_FIELDS).to_list()
        unlisted.sort(key=lambda document: document["_id"], reverse=not below)
        unlisted.sort(key=lambda document: document["created_at"], reverse=below)
        positioned = 0
        for start in range(0, len(unlisted), _POSITION_CHUNK):
            positioned += await self._position_chunk(unlisted[start : start + _POSITION_CHUNK], below=below)
        if below:
            await self.counters.update_one({"_id": LIST_POSITION}, {"$set": {"complete": True}})
        return positioned

    async def _position_chunk(self, chunk: list[Document], *, below: bool) -> int:
        """Position ``chunk`` (in the order given: newest first below the lowest, oldest first above the highest)."""
        for _ in range(_POSITION_ATTEMPTS):
            try:
                return await self._in_transaction(self._positioning(chunk, below=below))
            except _ChunkChangedError:
                ids = [document["_id"] for document in chunk]
                fresh = {
                    document["_id"]: document
                    async for document in self.reviews.find({"_id": {"$in": ids}, "list_position": None}, _GROUP_FIELDS)
                }
                chunk = [fresh[review_id] for review_id in ids if review_id in fresh]
        raise RuntimeError("reviews kept changing while they were given list positions; the next pass tries again")

    def _positioning(self, chunk: list[Document], *, below: bool) -> Callable[[AsyncClientSession], Awaitable[int]]:
        async def work(session: AsyncClientSession) -> int:
            if not chunk:
                return 0
            counts = {
                "bottom" if below else "top": -len(chunk) if below else len(chunk),
                **_counts_by_group(_group_of(document) for document in chunk),
            }
            state = await self.counters.find_one_and_update(
                {"_id": LIST_POSITION},
                {"$inc": counts},
                projection={"top": 1, "bottom": 1},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if state is None:
                raise RuntimeError("the list position counter is missing")
            if below:
                positions = positions_below(int(state["bottom"]), len(chunk))
            else:
                positions = positions_for_batch(int(state["top"]), len(chunk))
            updates = [
                UpdateOne(
                    {
                        "_id": document["_id"],
                        "list_position": None,
                        "status": document["status"],
                        "incident.severity": document["incident"]["severity"],
                    },
                    {"$set": {"list_position": position}},
                )
                for document, position in zip(chunk, positions, strict=True)
            ]
            result = await self.reviews.bulk_write(updates, session=session)
            if result.matched_count != len(updates):
                # Positioned by another replica, or its status changed since it was read: its count would be wrong.
                raise _ChunkChangedError
            return len(updates)

        return work

    async def _take_positions(self, session: AsyncClientSession, reviews: Sequence[Review]) -> list[int]:
        """Positions for ``reviews`` (in order), counted by status and severity: one write of the counter."""
        counts = {
            "top": len(reviews),
            **_counts_by_group((review.status, review.incident.severity) for review in reviews),
        }
        state = await self.counters.find_one_and_update(
            {"_id": LIST_POSITION},
            {"$inc": counts, "$setOnInsert": {"bottom": 1}},
            projection={"top": 1},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if state is None:
            raise RuntimeError("the list position counter was upserted but not returned")
        return positions_for_batch(int(state["top"]), len(reviews))

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
            outbox_documents(((event, seq, now) for seq, event in enumerate(events)), topic), session=session
        )

    async def _update(self, session: AsyncClientSession, review: Review, read_version: int) -> None:
        if review.version != read_version + 1:
            raise ValueError(f"a change must move review {review.id} from version {read_version} to the next")
        fields = review_to_document(review)
        del fields["_id"], fields["version"]
        before = await self.reviews.find_one_and_update(
            {"_id": review.id, "version": read_version},
            {"$set": fields, "$inc": {"version": 1}},
            projection={"status": 1, "incident.severity": 1, "list_position": 1},
            return_document=ReturnDocument.BEFORE,
            session=session,
        )
        if before is None:
            await self._stale(session, review.id, read_version)
            return
        was, becomes = _group_of(before), (str(review.status), str(review.incident.severity))
        # A review without a position is not counted yet: the backfill counts it as it finds it.
        if was != becomes and "list_position" in before:
            await self.counters.update_one(
                {"_id": LIST_POSITION}, {"$inc": {_count_field(*was): -1, _count_field(*becomes): 1}}, session=session
            )

    async def _stale(self, session: AsyncClientSession, review_id: str, read_version: int) -> None:
        current = await self.reviews.find_one({"_id": review_id}, {"version": 1}, session=session)
        if current is None:
            raise ReviewNotFoundError(review_id)
        raise StaleVersionError(review_id, read_version, int(current["version"]))

    async def _link_earlier(
        self, session: AsyncClientSession, earlier: Review, read_version: int, recurrence_id: str
    ) -> None:
        """The earlier review (``earlier``: as linked, a version past ``read_version``) gains one related review.

        A bounded write: one id added (and the marks on items verified effective), never the whole document
        rewritten, so linking costs the same however long the earlier review is.
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
                    **_recurred_after_verification(earlier, recurrence_id),
                },
            },
            session=session,
        )
        if result.matched_count == 0:
            await self._stale(session, earlier.id, read_version)

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
            (position,) = await self._take_positions(session, [review])
            try:
                await self.reviews.insert_one(
                    {**review_to_document(review), "list_position": position}, session=session
                )
            except DuplicateKeyError:
                await session.abort_transaction()
                return False
            if linked_earlier is not None:
                await self._link_earlier(session, *linked_earlier, recurrence_id=review.id)
            await self._recurrence.advance(session, review)
            await self._write_events(session, events, topic, now)
            return True

        return await self._in_transaction(work)

    async def open_reviews(self, batch: BatchOpening, topic: str) -> bool:
        """Store a batch's new reviews, the earlier reviews' links, the heads and every event: one transaction.

        A constant number of statements however large the batch: one insert of the reviews, one bulk write of the
        links (each conditional on the version read), one read and one write of the heads, one insert of the events
        (one entry per review, its events numbered and timed as ``open_review`` numbers them, so the relay keeps each
        review's order).
        False (nothing written) when an incident already has a review; ``StaleVersionError`` when an earlier review
        changed since it was read.
        """
        reviews = [opened.review for opened in batch.opened]
        # One entry per review the batch changes: a review opened and then linked by a later recurrence of the batch
        # gets one entry holding its ReviewOpened and its ReviewUpdated, in that order.
        entries = outbox_documents(
            ((event, seq, opened.at) for opened in batch.opened for seq, event in enumerate(opened.events)), topic
        )

        async def work(session: AsyncClientSession) -> bool:
            positions = await self._take_positions(session, reviews)
            documents = [
                {**review_to_document(review), "list_position": position}
                for review, position in zip(reviews, positions, strict=True)
            ]
            try:
                await self.reviews.insert_many(documents, session=session)
            except BulkWriteError as exc:
                if any(error.get("code") == DUPLICATE_KEY for error in exc.details.get("writeErrors", ())):
                    await session.abort_transaction()
                    return False
                raise
            except DuplicateKeyError:
                await session.abort_transaction()
                return False
            await self._link_all(session, batch.linked)
            await self._recurrence.advance_all(session, reviews)
            await self.outbox.insert_many(entries, session=session)
            return True

        if not reviews:
            return True
        async with self._write_turn:
            return await self._in_transaction(work)

    async def _link_all(self, session: AsyncClientSession, linked: Sequence[LinkedEarlier]) -> None:
        """Every earlier review gains its recurrences of the batch in one bounded update, conditional on the version
        read, moving it one version per link (``_link_earlier``, for several recurrences at once)."""
        if not linked:
            return
        updates: list[UpdateOne] = []
        for link in linked:
            earlier = link.review
            if earlier.version != link.read_version + len(link.recurrence_ids):
                raise ValueError(f"review {earlier.id} must move one version per recurrence linked to it")
            marks: Document = {}
            for recurrence_id in link.recurrence_ids:
                marks.update(_recurred_after_verification(earlier, recurrence_id))
            updates.append(
                UpdateOne(
                    {"_id": earlier.id, "version": link.read_version},
                    {
                        "$addToSet": {"related_reviews": {"$each": list(link.recurrence_ids)}},
                        "$set": {
                            "version": earlier.version,
                            "updated_at": earlier.updated_at,
                            "updated_by": earlier.updated_by,
                            **marks,
                        },
                    },
                )
            )
        result = await self.reviews.bulk_write(updates, ordered=False, session=session)
        if result.matched_count == len(updates):
            return
        current = self.reviews.find(
            {"_id": {"$in": [link.review.id for link in linked]}}, {"version": 1}, session=session
        )
        versions = {document["_id"]: int(document["version"]) async for document in current}
        for link in linked:
            if link.review.id not in versions:
                raise ReviewNotFoundError(link.review.id)
            if versions[link.review.id] != link.read_version:
                raise StaleVersionError(link.review.id, link.read_version, versions[link.review.id])
        raise RuntimeError("an earlier review's link matched nothing although its version is as read")

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
        return review_from_document(document) if document is not None else None

    async def incident_keys_with_review(self, incident_keys: Iterable[str]) -> set[str]:
        """Those of ``incident_keys`` that have a review: one query (the unique index) for a batch of incidents."""
        keys = sorted(set(incident_keys))
        if not keys:
            return set()
        cursor = self.reviews.find(
            {"incident_key": {"$in": keys}}, {"_id": 0, "incident_key": 1}, batch_size=len(keys) + 1
        )
        return {document["incident_key"] async for document in cursor}

    async def find(self, where: ReviewFilter, now: datetime, *, limit: int, offset: int) -> tuple[list[Review], int]:
        """One page of reviews, newest first, and exactly how many match in all."""
        page = await self.find_page(where, now, limit=limit, offset=offset, exact_total=True)
        return page.reviews, page.total

    async def find_page(
        self, where: ReviewFilter, now: datetime, *, limit: int, offset: int, exact_total: bool
    ) -> ReviewPage:
        """One page of reviews, newest first, read through growing windows of positions (``domain.list_window``).

        Candidates are read by one indexed condition of the filter (``candidate_queries``): an index that ends in
        ``list_position`` narrows them to the window, so a window costs its candidates, not its reviews; ``matches``
        decides the rest of the filter. A window is large enough once it holds ``offset + limit`` matches. The total
        comes from the stored counts when they can tell, else from the matches once every candidate was read
        (``exact_total``: read them all), else it is the matches of the last window (a lower bound).
        """
        state = await self.counters.find_one({"_id": LIST_POSITION})
        if state is None or not state.get("complete"):
            return await self._find_plain(where, now, limit=limit, offset=offset)
        queries = candidate_queries(where, now)
        if not queries:
            return ReviewPage([], 0)
        wanted = offset + limit
        top, bottom = int(state["top"]), int(state["bottom"])
        groups = counted_groups(where)
        # Overdue candidates come from ``status_due``, which has no positions: read at once (they are few). An exact
        # total the counts cannot give reads every candidate anyway: the page comes from that one read.
        read_all = candidates_for(where) is Candidates.OVERDUE or (exact_total and groups is None)
        everything = [Window(lowest=bottom - 1, covers_all=True)]
        steps = everything if read_all else windows(top, bottom, wanted)
        matched: list[tuple[int, str]] = []
        for window in steps:
            matched = await self._matching(where, queries, now, None if window.covers_all else window.lowest, wanted)
            if len(matched) >= wanted or window.covers_all:
                break
        reviews = await self._by_ids([review_id for _, review_id in matched[offset:wanted]])
        if groups is not None:
            counts = state.get("counts", {})
            total = sum(int(counts.get(status, {}).get(severity, 0)) for status, severity in groups)
            return ReviewPage(reviews, total)
        return ReviewPage(reviews, len(matched), total_is_exact=window.covers_all)

    async def _matching(
        self, where: ReviewFilter, queries: Sequence[Document], now: datetime, lowest: int | None, wanted: int | None
    ) -> list[tuple[int, str]]:
        """The (position, id) of the reviews matching ``where`` among the candidates above position ``lowest`` (None:
        every position), highest first. When the candidates are the whole filter (no other condition), only the
        ``wanted`` first are asked for."""
        whole = is_whole_filter(where)
        projection = {LIST_POSITION: 1} if whole else dict.fromkeys(FILTER_FIELDS, 1)
        found: dict[str, int] = {}
        for query in queries:
            # Without a range the server narrows the candidates by their index alone (every field of the query in it).
            ranged = query if lowest is None else {**query, LIST_POSITION: {"$gt": lowest}}
            cursor = self.reviews.find(ranged, projection)
            if whole and wanted is not None:
                cursor = cursor.sort(LIST_ORDER).limit(wanted)
            async for document in cursor:
                position = document.get(LIST_POSITION)
                # Without a range a review not positioned yet may be a candidate: it is listed once positioned.
                if position is not None and (whole or matches(where, document, now)):
                    found[document["_id"]] = int(position)
        return sorted(((position, review_id) for review_id, position in found.items()), key=lambda m: (-m[0], m[1]))

    async def _by_ids(self, review_ids: Sequence[str]) -> list[Review]:
        if not review_ids:
            return []
        found = {
            document["_id"]: review_from_document(document)
            async for document in self.reviews.find({"_id": {"$in": list(review_ids)}})
        }
        return [found[review_id] for review_id in review_ids if review_id in found]

    async def _find_plain(self, where: ReviewFilter, now: datetime, *, limit: int, offset: int) -> ReviewPage:
        """Until every review has a position: every match read and counted (exact, costs the whole collection)."""
        query = filter_query(where, now)
        total = await self.reviews.count_documents(query)
        cursor = self.reviews.find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        documents = await cursor.skip(offset).limit(limit).to_list(length=limit)
        return ReviewPage([review_from_document(document) for document in documents], total)

    async def unfinished_action_items(
        self, where: ActionItemFilter, now: datetime, *, limit: int, offset: int
    ) -> tuple[list[ActionItemRow], int]:
        """Unfinished action items across reviews, soonest due first (no due date last), and how many match.

        Only reviews holding a matching item are read (the ``unfinished_action_items`` index serves the first match);
        their items are then unwound and matched one by one.
        """
        review_match: Document = {"action_items": {"$elemMatch": action_item_query(where, now, "")}}
        if where.team is not None:
            review_match["incident.team"] = where.team
        pipeline: list[Document] = [
            {"$match": review_match},
            {"$project": {"incident.title": 1, "incident.team": 1, "action_items": 1}},
            {"$unwind": "$action_items"},
            {"$match": action_item_query(where, now, "action_items.")},
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
            found = await self._recurrence.latest_in(group, query)
            if found is not None:
                return found
        return None

    async def latest_occurrences(self, queries: Sequence[RecurrenceQuery]) -> list[tuple[Review | None, ...]]:
        """``earlier_occurrence`` group by group for a batch of incidents, in a fixed number of reads."""
        return await self._recurrence.latest_in_each(queries)

    async def unsent(self, limit: int, *, ends_before: str | None = None) -> list[OutboxEntry]:
        """The ``limit`` oldest unsent entries, oldest first: a read from the ``unsent_by_order`` index.

        MongoDB reads only ``limit`` entries from the index; SecantusDB reads every entry in the index range before it
        applies the limit, so during a backlog the relay passes ``ends_before`` (where the batch probably ends) and
        only the entries older than it are read. Too few there: the rest of the batch is read from that key on. Either
        way the answer is the oldest ``limit`` entries: every unsent entry older than the bound is in the first read.

        Entries written before the order key existed (a rolling deploy) sort first, null before any string, and get
        their key (the one they would have had) before the batch is read, so they go out in the order they would
        have. Entries written before grouping (one event each, at the top level) are read as entries of one event.
        """
        if ends_before is None:
            documents = await self._unsent_documents({"sent_at": None}, limit)
            if documents and not isinstance(documents[0].get(OUTBOX_ORDER), str):
                await self._key_unkeyed_entries()
                documents = await self._unsent_documents({"sent_at": None}, limit)
        else:
            if await self.outbox.find_one({"sent_at": None, OUTBOX_ORDER: None}, {"_id": 1}) is not None:
                await self._key_unkeyed_entries()
            documents = await self._unsent_documents({"sent_at": None, OUTBOX_ORDER: {"$lt": ends_before}}, limit)
            if len(documents) < limit:
                documents += await self._unsent_documents(
                    {"sent_at": None, OUTBOX_ORDER: {"$gte": ends_before}}, limit - len(documents)
                )
        return [outbox_entry_of(doc) for doc in documents]

    async def _unsent_documents(self, query: Document, limit: int) -> list[Document]:
        return await self.outbox.find(query).sort(OUTBOX_ORDER, ASCENDING).limit(limit).to_list(length=limit)

    async def _key_unkeyed_entries(self, chunk: int = 1000) -> None:
        """Give every unsent entry written without an order key the key it would have had (an indexed read of those
        entries only). Setting it again to the same value is harmless, so racing relays need no coordination."""
        while True:
            unkeyed = await self.outbox.find(
                {"sent_at": None, OUTBOX_ORDER: None}, {"created_at": 1, "version": 1, "seq": 1}
            ).to_list(length=chunk)
            if unkeyed:
                await self.outbox.bulk_write(
                    [UpdateOne({"_id": doc["_id"]}, {"$set": {OUTBOX_ORDER: outbox_order_of(doc)}}) for doc in unkeyed],
                    ordered=False,
                )
            if len(unkeyed) < chunk:
                return

    async def mark_sent(self, entry_ids: list[str], now: datetime) -> None:
        if entry_ids:
            async with self._write_turn:
                await self.outbox.update_many({"_id": {"$in": entry_ids}, "sent_at": None}, {"$set": {"sent_at": now}})

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
