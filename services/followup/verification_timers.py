"""MongoDB adapter: remediation verification timers (``verification_timers``), one per evaluation attempt.

The same lease mechanism as the other timers (``repository.TimerRepository``): a due, unfired timer is claimed with
``find_one_and_update`` and a lease, its event published, then it is marked fired; a replica that dies leaves the
lease to run out and another takes over. Two differences, because the event is only known once evaluated:

- the verdict's event is stored on the timer (``payload``, first writer wins) before it is published, so a replica
  taking over after that publishes the very same bytes; one that dies before it, mid-evaluation, leaves the next
  one to evaluate again (the same questions about the same moments: the verdict differs only if the data did);
- an ``inconclusive`` attempt adds the next attempt (``#<n+1>``) before it is marked fired, so no retry is lost;
  adding is an upsert that only ever inserts, so a replica repeating the attempt adds nothing more.

Reconciling a review keeps one evaluation series per planned evaluation: attempt 1 is inserted if the series has no
timer yet, and every unfired timer of a series no longer planned (item reopened, plan changed, verdict recorded) is
deleted, later attempts included. Fired timers are history and stay.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING, DeleteMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.followup.domain.verification import PlannedVerification, VerificationRequest, attempt_timer_id
from services.followup.timer_leases import claim_earliest_due, ensure_unfired_by_due

VERIFICATION_TIMERS = "verification_timers"
DUPLICATE_KEY = 11000

Document = dict[str, Any]
_requests: TypeAdapter[VerificationRequest] = TypeAdapter(VerificationRequest)


@dataclass(frozen=True)
class ClaimedVerification:
    """A due verification attempt this replica holds the lease on."""

    timer_id: str
    series: str
    attempt: int
    due_at: datetime
    first_due_at: datetime  # when attempt 1 was due: how long this evaluation has gone unanswered
    request: VerificationRequest
    payload: str | None  # the verdict's event, once an evaluation stored it


@dataclass(frozen=True)
class RetryBacklog:
    """Evaluations whose last attempt was inconclusive and that wait for the next one."""

    retrying: int
    oldest_first_due_at: datetime | None


class VerificationTimerRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.timers: AsyncCollection[Document] = database[VERIFICATION_TIMERS]

    async def ensure_indexes(self) -> None:
        await ensure_unfired_by_due(self.timers)
        await self.timers.create_index([("review_id", ASCENDING), ("series", ASCENDING)], name="by_review_series")

    async def reconcile(self, review_id: str, planned: tuple[PlannedVerification, ...]) -> None:
        """Exactly the planned evaluations pending for this review (each with its attempts so far)."""
        series = [one.request.series for one in planned]
        await self.timers.delete_many({"review_id": review_id, "fired_at": None, "series": {"$nin": series}})
        for one in planned:
            await self._insert_once(one.request, 1, one.due_at, one.due_at)

    async def reconcile_many(self, plans: Mapping[str, tuple[PlannedVerification, ...]]) -> None:
        """``reconcile`` for several reviews in one unordered bulk write: the deletes and first attempts never meet
        (a delete takes series not planned, an insert a planned one), so their order does not matter."""
        operations: list[DeleteMany | UpdateOne] = []
        for review_id, planned in plans.items():
            series = [one.request.series for one in planned]
            operations.append(DeleteMany({"review_id": review_id, "fired_at": None, "series": {"$nin": series}}))
            operations += [
                UpdateOne(
                    {"_id": attempt_timer_id(one.request.series, 1)},
                    {"$setOnInsert": _attempt_document(one.request, 1, one.due_at, one.due_at)},
                    upsert=True,
                )
                for one in planned
            ]
        if not operations:
            return
        try:
            await self.timers.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # Two upserts of one attempt raced: the other inserted it.
            if any(error["code"] != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def add_attempt(
        self, request: VerificationRequest, attempt: int, due_at: datetime, first_due: datetime
    ) -> None:
        await self._insert_once(request, attempt, due_at, first_due)

    async def _insert_once(
        self, request: VerificationRequest, attempt: int, due_at: datetime, first_due: datetime
    ) -> None:
        timer_id = attempt_timer_id(request.series, attempt)
        document = _attempt_document(request, attempt, due_at, first_due)
        try:
            await self.timers.update_one({"_id": timer_id}, {"$setOnInsert": document}, upsert=True)
        except DuplicateKeyError:
            return  # two upserts raced: the other inserted it

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime) -> ClaimedVerification | None:
        document = await claim_earliest_due(self.timers, now, owner, lease_until, count_in="claims")
        if document is None:
            return None
        return ClaimedVerification(
            timer_id=document["_id"],
            series=document["series"],
            attempt=document["attempt"],
            due_at=document["due_at"],
            first_due_at=document["first_due_at"],
            request=_requests.validate_python(document["request"]),
            payload=document.get("payload"),
        )

    async def store_verdict(self, timer_id: str, owner: str, payload: str, verdict: str) -> bool:
        """Keep the evaluated event on the timer, unless this replica lost its lease (or the timer was cancelled)."""
        result = await self.timers.update_one(
            {"_id": timer_id, "lease_owner": owner, "fired_at": None, "payload": None},
            {"$set": {"payload": payload, "verdict": verdict}},
        )
        return result.modified_count == 1

    async def mark_fired(self, timer_id: str, owner: str, now: datetime, *, skipped: bool = False) -> bool:
        result = await self.timers.update_one(
            {"_id": timer_id, "lease_owner": owner, "fired_at": None},
            {"$set": {"fired_at": now, "fired_by": owner, "lease_until": None, "skipped": skipped}},
        )
        return result.modified_count == 1

    async def release(self, timer_id: str, owner: str) -> None:
        await self.timers.update_one(
            {"_id": timer_id, "lease_owner": owner, "fired_at": None},
            {"$set": {"lease_owner": None, "lease_until": None}},
        )

    async def retry_backlog(self) -> RetryBacklog:
        """Counted in MongoDB: evaluations waiting for a retry (an unfired attempt after the first)."""
        cursor = await self.timers.aggregate(
            [
                {"$match": {"fired_at": None, "attempt": {"$gt": 1}}},
                {"$group": {"_id": None, "retrying": {"$sum": 1}, "oldest": {"$min": "$first_due_at"}}},
            ]
        )
        rows = await cursor.to_list()
        if not rows:
            return RetryBacklog(0, None)
        return RetryBacklog(rows[0]["retrying"], rows[0]["oldest"])

    async def for_reviews(self, review_ids: Iterable[str]) -> list[Document]:
        cursor = self.timers.find({"review_id": {"$in": sorted(set(review_ids))}}).sort(
            [("due_at", ASCENDING), ("_id", ASCENDING)]
        )
        return await cursor.to_list()


def _attempt_document(request: VerificationRequest, attempt: int, due_at: datetime, first_due: datetime) -> Document:
    return {
        "review_id": request.review_id,
        "series": request.series,
        "attempt": attempt,
        "method": request.plan.method.value,
        "due_at": due_at,
        "first_due_at": first_due,
        "request": _requests.dump_python(request, mode="json"),
        "payload": None,
        "verdict": None,
        "fired_at": None,
        "claims": 0,
    }
