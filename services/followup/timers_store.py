"""MongoDB adapter for follow-up's durable timers (``timers``).

Timers are reconciled to the planned set in one bulk write per review, and fired through a lease so that any number
of replicas fire each one once.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DeleteMany, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from services.followup.domain.timers import PlannedTimer
from services.followup.ports import ClaimedTimer, StoredTimers, TimerPlan
from services.followup.timer_leases import claim_earliest_due, ensure_unfired_by_due

TIMERS = "timers"
Write = InsertOne[dict[str, Any]] | UpdateOne | DeleteMany
DUPLICATE_KEY = 11000
INDEX_NOT_FOUND = 27
# Unfired timers, earliest due first, then by id: claim_due's filter and its whole sort.

Document = dict[str, Any]


class TimerRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.timers: AsyncCollection[Document] = database[TIMERS]

    async def ensure_indexes(self) -> None:
        await ensure_unfired_by_due(self.timers)
        await self.timers.create_index([("review_id", ASCENDING)], name="by_review")
        try:
            await self.timers.drop_index("unfired_by_due")  # a prefix of the one above: only slowed writes down
        except OperationFailure as exc:
            if exc.code != INDEX_NOT_FOUND:
                raise

    async def timers_of(self, review_ids: Iterable[str]) -> dict[str, StoredTimers]:
        """The timers of these reviews (fired ones too), in one query, e.g. for a batch of their events."""
        ids = sorted(set(review_ids))
        found: dict[str, StoredTimers] = {review_id: {} for review_id in ids}
        if ids:
            async for document in self.timers.find({"review_id": {"$in": ids}}):
                found[document["review_id"]][document["_id"]] = document
        return found

    async def reconcile(
        self, review_id: str, planned: tuple[PlannedTimer, ...], stored: StoredTimers | None = None
    ) -> StoredTimers | None:
        """Make the review's unfired timers exactly ``planned``; fired ones are history and stay as they are.

        Only what differs from the review's timers as stored (``stored``: as read before, e.g. by ``timers_of``;
        else read now) is written, in one unordered bulk write: inserts of planned timers not stored yet, updates of
        unfired ones whose event would change (e.g. a new owner), and one delete of unfired timers no longer
        planned. Most events change no timer, and then nothing is written at all.

        The writes keep the filters of a blind reconcile, so ``stored`` being out of date changes nothing that
        matters: an update or insert that meets a timer which has fired meanwhile fails on its id and is meant to
        (that firing is done); the delete never touches a fired timer. Returns the review's timers as they now are,
        or None when a write met a timer written meanwhile (by another replica, during a rebalance): read them again.
        """
        if stored is None:
            stored = {document["_id"]: document async for document in self.timers.find({"review_id": review_id})}
        return (await self.reconcile_many({review_id: (planned, stored)}))[review_id]

    async def reconcile_many(self, plans: Mapping[str, TimerPlan]) -> dict[str, StoredTimers | None]:
        """``reconcile`` for several reviews, their writes in one unordered bulk write (none when nothing differs).

        A write error names its operation, so a duplicate id (a timer written meanwhile) makes only its own review's
        result None; any other write error is raised.
        """
        operations: list[Write] = []
        review_of_operation: list[str] = []
        result: dict[str, StoredTimers | None] = {}
        for review_id, (planned, stored) in plans.items():
            writes, result[review_id] = _writes(review_id, planned, stored)
            operations += writes
            review_of_operation += [review_id] * len(writes)
        if not operations:
            return result
        try:
            await self.timers.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error["code"] != DUPLICATE_KEY:
                    raise
                result[review_of_operation[error["index"]]] = None
        return result

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime) -> ClaimedTimer | None:
        """Take the lease on the earliest due, unfired timer nobody holds (or whose holder's lease ran out)."""
        document = await claim_earliest_due(self.timers, now, owner, lease_until, count_in="attempts")
        if document is None:
            return None
        return ClaimedTimer(
            timer_id=document["_id"],
            review_id=document["review_id"],
            kind=document["kind"],
            subject=document["subject"],
            level=document["level"],
            due_at=document["due_at"],
            event_id=document["event_id"],
            event_type=document["event_type"],
            payload=document["payload"],
            attempts=document["attempts"],
            expires_at=document.get("expires_at"),
        )

    async def mark_fired(self, timer_id: str, owner: str, now: datetime, *, skipped: bool = False) -> bool:
        """Record the firing (or, ``skipped``, that it expired unsent); False if this replica's lease was lost."""
        result = await self.timers.update_one(
            {"_id": timer_id, "lease_owner": owner, "fired_at": None},
            {"$set": {"fired_at": now, "fired_by": owner, "lease_until": None, "skipped": skipped}},
        )
        return result.modified_count == 1

    async def release(self, timer_id: str, owner: str) -> None:
        """Give the lease back after a failed publish, so the next sweep retries without waiting for it to run out."""
        await self.timers.update_one(
            {"_id": timer_id, "lease_owner": owner, "fired_at": None},
            {"$set": {"lease_owner": None, "lease_until": None}},
        )

    async def for_review(self, review_id: str) -> list[Document]:
        cursor = self.timers.find({"review_id": review_id}).sort([("due_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.to_list()


def _writes(
    review_id: str, planned: tuple[PlannedTimer, ...], stored: StoredTimers
) -> tuple[list[Write], StoredTimers]:
    """What makes the review's unfired timers ``planned`` given ``stored``, and its timers once that is written."""
    planned_ids = [timer.timer_id for timer in planned]
    after = {
        timer_id: document
        for timer_id, document in stored.items()
        if document.get("fired_at") is not None or timer_id in planned_ids
    }
    operations: list[Write] = []
    for timer in planned:
        fields = timer_fields(timer)
        current = stored.get(timer.timer_id)
        if current is None:
            document = {"_id": timer.timer_id, **fields, "fired_at": None, "attempts": 0}
            operations.append(InsertOne(document))
        elif current.get("fired_at") is None and any(current.get(name) != value for name, value in fields.items()):
            document = {**current, **fields}
            operations.append(
                UpdateOne(
                    {"_id": timer.timer_id, "fired_at": None},
                    {"$set": fields, "$setOnInsert": {"fired_at": None, "attempts": 0}},
                    upsert=True,
                )
            )
        else:
            continue  # as planned already, or fired: history
        after[timer.timer_id] = document
    if any(document.get("fired_at") is None and timer_id not in after for timer_id, document in stored.items()):
        operations.append(DeleteMany({"review_id": review_id, "fired_at": None, "_id": {"$nin": planned_ids}}))
    return operations, after


def timer_fields(timer: PlannedTimer) -> Document:
    """What a planned timer stores (besides its firing state)."""
    return {
        "review_id": timer.review_id,
        "kind": timer.kind.value,
        "subject": timer.subject,
        "level": timer.level,
        "due_at": timer.due_at,
        "expires_at": timer.expires_at,
        "event_id": str(timer.event.event_id),
        "event_type": timer.event.type,
        "payload": timer.event.model_dump_json(),
    }
