"""The recurrence heads (``review_recurrence_heads``): finding a recurrence's earlier occurrence at a cost that does not
grow with the number of reviews stored.

Each recurrence group (fingerprint, or service and normalised title) has a small head document naming its latest
occurrence, kept in the transaction that opens a review. The head answers the look-up with two reads by id whenever
it lies in the window; only an incident resolved before its group's latest one (it arrived late) or a group stored
before heads existed asks the index, whose filter and sort it matches (MongoDB stops after the first entries; a
server that does not stop early scans the group's entries in the window).

A batch asks for all its groups at once (``latest_in_each``, ``advance_all``): one read of the heads, one of their
reviews, one write of the heads advanced. A group without a head then means a group without reviews, once ``complete``
has given every group stored before heads existed its head (the ``HEADS_COMPLETE`` marker says so); until then such a
group asks the index, as one incident does.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from services.review.documents import review_from_document, review_to_document
from services.review.domain.record import Review
from services.review.domain.recurrence import (
    RecurrenceGroup,
    RecurrenceQuery,
    groups_of,
    occurrence_order,
    recurrence_groups,
)

Document = dict[str, Any]

# Latest occurrence first (see ``occurrence_order``): the recurrence indexes end in these keys, so they serve the sort.
LATEST_OCCURRENCE_FIRST = [("incident.resolved_at", DESCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]


def group_filter(group: RecurrenceGroup) -> Document:
    if group.matched_on == "fingerprint":
        return {"incident.fingerprint": group.fingerprint}
    return {"incident.service": group.service, "title_key": group.title_key}


def head_document(document: Document) -> Document:
    """A group's head: its latest occurrence, by the fields ``occurrence_order`` compares."""
    return {
        "review_id": document["_id"],
        "resolved_at": document["incident"]["resolved_at"],
        "created_at": document["created_at"],
    }


def head_order(head: Document) -> tuple[datetime, datetime, str]:
    return occurrence_order(head["resolved_at"], head["created_at"], head["review_id"])


def head_of(review: Review) -> Document:
    return {"review_id": review.id, "resolved_at": review.incident.resolved_at, "created_at": review.created_at}


# Not a group's key (those are JSON arrays): the document saying every group with reviews has its head.
HEADS_COMPLETE = "complete"
# Fields ``complete`` reads of each review: its groups and its place in the occurrence order.
_GROUP_FIELDS = {"incident.fingerprint": 1, "incident.service": 1, "title_key": 1, "incident.resolved_at": 1}
_BACKFILL_CHUNK = 1000


class RecurrenceHeads:
    """Reads and advances the heads; the repository calls it inside its transactions."""

    def __init__(self, reviews: AsyncCollection[Document], heads: AsyncCollection[Document]) -> None:
        self._reviews = reviews
        self._heads = heads

    async def advance(self, session: AsyncClientSession, review: Review) -> None:
        """Make ``review`` the head of its recurrence groups where it is their latest occurrence."""
        for group in recurrence_groups(review):
            head = await self._heads.find_one({"_id": group.key}, session=session)
            if head is None:
                # A group without a head (its reviews were stored before heads existed): its latest review, once.
                latest = await self._reviews.find_one(
                    group_filter(group), sort=LATEST_OCCURRENCE_FIRST, session=session
                )
                if latest is None:
                    continue
                head = head_document(latest)
            else:
                new = occurrence_order(review.incident.resolved_at, review.created_at, review.id)
                if new <= head_order(head):
                    continue
                head = head_document(review_to_document(review))
            await self._heads.replace_one({"_id": group.key}, head, upsert=True, session=session)

    async def latest_in(self, group: RecurrenceGroup, query: RecurrenceQuery) -> Review | None:
        head = await self._heads.find_one({"_id": group.key})
        if head is not None and head["review_id"] != query.review_id and head["resolved_at"] <= query.until:
            if head["resolved_at"] < query.since:
                return None  # the group's latest occurrence is older than the window: so is every other
            document = await self._reviews.find_one({"_id": head["review_id"]})
            if document is not None:
                return review_from_document(document)
        return await self._latest_by_index(group, query)

    async def latest_in_each(self, queries: Sequence[RecurrenceQuery]) -> list[tuple[Review | None, ...]]:
        """``latest_in`` for every group of every query: two reads, plus the index for the rare late arrival."""
        keys = sorted({group.key for query in queries for group in query.groups})
        if not keys:
            return [() for _ in queries]
        # One reply each (``batch_size``: no getMore however many groups the batch has).
        found_heads = self._heads.find({"_id": {"$in": [*keys, HEADS_COMPLETE]}}, batch_size=len(keys) + 2)
        heads = {head["_id"]: head async for head in found_heads}
        complete = HEADS_COMPLETE in heads
        ask_index = object()
        plans: list[list[object]] = []  # per query and group: a head's review id, None, or ask_index
        for query in queries:
            plan: list[object] = []
            for group in query.groups:
                head = heads.get(group.key)
                if head is None:
                    plan.append(None if complete else ask_index)
                elif head["review_id"] != query.review_id and head["resolved_at"] <= query.until:
                    plan.append(None if head["resolved_at"] < query.since else head["review_id"])
                else:
                    plan.append(ask_index)
            plans.append(plan)
        wanted = sorted({step for plan in plans for step in plan if isinstance(step, str)})
        found: dict[str, Review] = {}
        if wanted:
            found = {
                document["_id"]: review_from_document(document)
                async for document in self._reviews.find({"_id": {"$in": wanted}}, batch_size=len(wanted) + 1)
            }
        answers: list[tuple[Review | None, ...]] = []
        for query, plan in zip(queries, plans, strict=True):
            answer: list[Review | None] = []
            for group, step in zip(query.groups, plan, strict=True):
                if isinstance(step, str) and step in found:
                    answer.append(found[step])
                elif step is None:
                    answer.append(None)
                else:
                    answer.append(await self._latest_by_index(group, query))
            answers.append(tuple(answer))
        return answers

    async def _latest_by_index(self, group: RecurrenceGroup, query: RecurrenceQuery) -> Review | None:
        # No head yet, or this incident was resolved before its group's latest one: the index, latest first. Two
        # entries, because a redelivered incident finds its own review (which it must not link to).
        cursor = (
            self._reviews.find(
                {**group_filter(group), "incident.resolved_at": {"$gte": query.since, "$lte": query.until}}
            )
            .sort(LATEST_OCCURRENCE_FIRST)
            .limit(2)
        )
        async for document in cursor:
            if document["_id"] != query.review_id:
                return review_from_document(document)
        return None

    async def advance_all(self, session: AsyncClientSession, reviews: Sequence[Review]) -> None:
        """``advance`` for a batch of new reviews (already inserted in ``session``): one read, one write."""
        latest: dict[str, tuple[RecurrenceGroup, Review]] = {}
        for review in reviews:
            for group in recurrence_groups(review):
                best = latest.get(group.key)
                if best is None or head_order(head_of(review)) > head_order(head_of(best[1])):
                    latest[group.key] = (group, review)
        if not latest:
            return
        found = self._heads.find(
            {"_id": {"$in": [*latest, HEADS_COMPLETE]}}, batch_size=len(latest) + 2, session=session
        )
        heads = {head["_id"]: head async for head in found}
        writes: list[ReplaceOne[Document]] = []
        for key, (group, review) in latest.items():
            head = heads.get(key)
            if head is None and HEADS_COMPLETE not in heads:
                # Maybe a group stored before heads existed: its latest review (the batch's are inserted), once.
                stored = await self._reviews.find_one(
                    group_filter(group), sort=LATEST_OCCURRENCE_FIRST, session=session
                )
                new_head = head_document(stored) if stored is not None else head_of(review)
            elif head is not None and head_order(head_of(review)) <= head_order(head):
                continue
            else:
                new_head = head_of(review)
            writes.append(ReplaceOne({"_id": key}, new_head, upsert=True))
        if writes:
            await self._heads.bulk_write(writes, ordered=False, session=session)

    async def complete(self) -> None:
        """Give every group stored before heads existed its head, once; then a missing head means no reviews.

        One pass over the reviews' group fields. A head that exists is never replaced (a live write keeps it
        right), so replicas doing this at the same time, or opening reviews meanwhile, agree.
        """
        if await self._heads.find_one({"_id": HEADS_COMPLETE}) is not None:
            return
        latest: dict[str, Document] = {}
        async for document in self._reviews.find({}, {**_GROUP_FIELDS, "created_at": 1}):
            incident = document.get("incident", {})
            head = head_document(document)
            for group in groups_of(incident.get("fingerprint"), incident.get("service"), document.get("title_key", "")):
                best = latest.get(group.key)
                if best is None or head_order(head) > head_order(best):
                    latest[group.key] = head
        writes = [UpdateOne({"_id": key}, {"$setOnInsert": head}, upsert=True) for key, head in latest.items()]
        for start in range(0, len(writes), _BACKFILL_CHUNK):
            await self._heads.bulk_write(writes[start : start + _BACKFILL_CHUNK], ordered=False)
        await self._heads.update_one({"_id": HEADS_COMPLETE}, {"$set": {"groups": len(latest)}}, upsert=True)
