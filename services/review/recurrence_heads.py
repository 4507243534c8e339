"""The recurrence heads (``review_recurrence_heads``): finding a recurrence's earlier occurrence at a cost that does not
grow with the number of reviews stored.

Each recurrence group (fingerprint, or service and normalised title) has a small head document naming its latest
occurrence, kept in the transaction that opens a review. The head answers the look-up with two reads by id whenever
it lies in the window; only an incident resolved before its group's latest one (it arrived late) or a group stored
before heads existed asks the index, whose filter and sort it matches (MongoDB stops after the first entries; a
server that does not stop early scans the group's entries in the window).
"""

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from services.review.documents import review_from_document, review_to_document
from services.review.domain.record import Review
from services.review.domain.recurrence import RecurrenceGroup, RecurrenceQuery, occurrence_order, recurrence_groups

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
