"""MongoDB adapters: follow-up's view of reviews (``followup_reviews``) and its durable timers (``timers``).

Follow-up keeps its own projection, built from ``reviews.events``, so it never reads review's collections. Timers
are reconciled to the planned set in one bulk write per review, and fired through a lease so that any number of
replicas fire each one once.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DeleteMany, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from schemas import ActionItemPriority, ActionItemStatus, ReviewStatus, Severity
from schemas.verification import Verdict, VerificationPlan
from services.followup.domain.backlog import Backlog, backlog_from_counts
from services.followup.domain.projection import (
    BEFORE_PUBLICATION,
    FINISHED_ITEM_STATUSES,
    OPEN_STATUSES,
    ActionItemView,
    ReviewView,
)
from services.followup.domain.timers import PlannedTimer

TRACKED_REVIEWS = "followup_reviews"
TIMERS = "timers"
DUPLICATE_KEY = 11000
INDEX_NOT_FOUND = 27
# Unfired timers, earliest due first, then by id: claim_due's filter and its whole sort.
UNFIRED_BY_DUE = [("fired_at", ASCENDING), ("due_at", ASCENDING), ("_id", ASCENDING)]

Document = dict[str, Any]
# The timers of one review as stored, fired ones included: timer id -> document.
StoredTimers = dict[str, Document]
# A view this replica stored: what it replaced (None: nothing) and what it is now.
ViewChange = tuple[ReviewView | None, ReviewView]
# Changes kept for the gauges between two counts; past this many the next refresh counts instead (bounded memory).
CHANGES_KEPT = 10_000


class ReviewViewRepository:
    """Follow-up's view of each review; written with a compare-and-set on ``version``, so no update is lost.

    Remembers the changes it stored since the backlog was last counted (``take_changes``), so the gauges can follow
    them without counting again: each change is either in a count or among the changes taken after it, never both.
    """

    def __init__(self, database: AsyncDatabase[Document], *, changes_kept: int = CHANGES_KEPT) -> None:
        self.reviews: AsyncCollection[Document] = database[TRACKED_REVIEWS]
        self._changes: list[ViewChange] = []
        self._changes_kept = changes_kept
        self._changes_lost = False
        # Held by a count and by each write, so that no write lands while a count is under way.
        self._counting = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        await self.reviews.create_index([("status", ASCENDING), ("severity", ASCENDING)], name="status_severity")

    async def get(self, review_id: str) -> ReviewView | None:
        document = await self.reviews.find_one({"_id": review_id})
        return None if document is None else view_from_document(document)

    async def get_many(self, review_ids: Iterable[str]) -> dict[str, ReviewView | None]:
        """The views of these reviews in one query (None: not tracked yet), e.g. for a batch of their events."""
        ids = sorted(set(review_ids))
        if not ids:
            return {}
        found = {
            document["_id"]: view_from_document(document) async for document in self.reviews.find({"_id": {"$in": ids}})
        }
        return {review_id: found.get(review_id) for review_id in ids}

    async def save(self, view: ReviewView, replacing: ReviewView | None) -> bool:
        """Store ``view`` if the stored one is still ``replacing``'s version (None: none stored); False otherwise."""
        async with self._counting:
            if not await self._write(view, None if replacing is None else replacing.version):
                return False
            if len(self._changes) >= self._changes_kept:
                self._changes.clear()
                self._changes_lost = True
            if not self._changes_lost:
                self._changes.append((replacing, view))
            return True

    async def _write(self, view: ReviewView, previous_version: int | None) -> bool:
        document = view_to_document(view)
        if previous_version is None:
            try:
                await self.reviews.insert_one(document)
            except DuplicateKeyError:
                return False
            return True
        result = await self.reviews.replace_one({"_id": view.review_id, "version": previous_version}, document)
        return result.matched_count == 1

    def take_changes(self) -> list[ViewChange] | None:
        """The views stored since the last count or take, oldest first; None when too many to keep: count again."""
        changes, lost = self._changes, self._changes_lost
        self._changes, self._changes_lost = [], False
        return None if lost else changes

    async def backlog(self, now: datetime) -> Backlog:
        """What is open and what is overdue at ``now``, counted in MongoDB (right after a restart, too).

        Reads every open review: its cost grows with the backlog, so the gauges count only now and then.
        """
        async with self._counting:
            self._changes, self._changes_lost = [], False  # all in the count
            return await self._count(now)

    async def _count(self, now: datetime) -> Backlog:
        open_statuses = [status.value for status in OPEN_STATUSES]
        reviews_open = {
            (row["_id"]["status"], row["_id"]["severity"]): row["count"]
            for row in await self._aggregate(
                {"$match": {"status": {"$in": open_statuses}}},
                {"$group": {"_id": {"status": "$status", "severity": "$severity"}, "count": {"$sum": 1}}},
            )
        }
        reviews_overdue = {
            row["_id"]: row["count"]
            for row in await self._aggregate(
                {
                    "$match": {
                        "status": {"$in": [status.value for status in BEFORE_PUBLICATION]},
                        "due_at": {"$ne": None, "$lte": now},
                    }
                },
                {"$group": {"_id": "$severity", "count": {"$sum": 1}}},
            )
        }
        items = await self._aggregate(
            {"$match": {"status": {"$in": open_statuses}, "action_items.0": {"$exists": True}}},
            {"$unwind": "$action_items"},
            {"$match": {"action_items.status": {"$nin": [status.value for status in FINISHED_ITEM_STATUSES]}}},
            {
                "$group": {
                    "_id": "$action_items.priority",
                    "open": {"$sum": 1},
                    # A missing due date compares lower than any date in MongoDB: check for it explicitly.
                    "overdue": {"$sum": {"$cond": [_due_by("$action_items.due_at", now), 1, 0]}},
                }
            },
        )
        return backlog_from_counts(
            reviews_open=reviews_open,
            reviews_overdue=reviews_overdue,
            action_items_open={row["_id"]: row["open"] for row in items},
            action_items_overdue={row["_id"]: row["overdue"] for row in items},
        )

    async def _aggregate(self, *stages: Document) -> list[Document]:
        cursor = await self.reviews.aggregate(list(stages))
        return await cursor.to_list()


def _due_by(field: str, now: datetime) -> Document:
    return {"$and": [{"$ne": [{"$ifNull": [field, None]}, None]}, {"$lte": [field, now]}]}


@dataclass(frozen=True)
class ClaimedTimer:
    """A due timer this replica holds the lease on, with the event its firing publishes."""

    timer_id: str
    review_id: str
    kind: str
    subject: str
    level: int
    due_at: datetime
    event_id: str
    event_type: str
    payload: str
    attempts: int
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class TimerRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.timers: AsyncCollection[Document] = database[TIMERS]

    async def ensure_indexes(self) -> None:
        await self.timers.create_index(UNFIRED_BY_DUE, name="unfired_by_due_then_id")
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
        planned_ids = [timer.timer_id for timer in planned]
        after = {
            timer_id: document
            for timer_id, document in stored.items()
            if document.get("fired_at") is not None or timer_id in planned_ids
        }
        operations: list[InsertOne[Document] | UpdateOne | DeleteMany] = []
        for timer in planned:
            fields = _timer_fields(timer)
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
        if not operations:
            return after
        try:
            await self.timers.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            if any(error["code"] != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise
            return None
        return after

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime) -> ClaimedTimer | None:
        """Take the lease on the earliest due, unfired timer nobody holds (or whose holder's lease ran out)."""
        document = await self.timers.find_one_and_update(
            {
                "due_at": {"$lte": now},
                "fired_at": None,
                "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
            },
            {"$set": {"lease_owner": owner, "lease_until": lease_until}, "$inc": {"attempts": 1}},
            sort=[("due_at", ASCENDING), ("_id", ASCENDING)],
            # The lease's $or makes some servers (the MongoDB-compatible test server) give up on indexes and scan
            # every timer; MongoDB picks this index anyway.
            hint=UNFIRED_BY_DUE,
            return_document=ReturnDocument.AFTER,
        )
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


def _timer_fields(timer: PlannedTimer) -> Document:
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


def view_to_document(view: ReviewView) -> Document:
    return {
        "_id": view.review_id,
        "incident_key": view.incident_key,
        "title": view.title,
        "severity": view.severity.value,
        "status": view.status.value,
        "owner": view.owner,
        "team": view.team,
        "service": view.service,
        "due_at": view.due_at,
        "due_set_at": view.due_set_at,
        "opened_at": view.opened_at,
        "incident_started_at": view.incident_started_at,
        "incident_resolved_at": view.incident_resolved_at,
        "version": view.version,
        "completed_at": view.completed_at,
        "recurrences": view.recurrences,
        "seen_event_ids": list(view.seen_event_ids),
        "action_items": [
            {
                "action_item_id": item.action_item_id,
                "title": item.title,
                "priority": item.priority.value,
                "status": item.status.value,
                "owner": item.owner,
                "due_at": item.due_at,
                "due_set_at": item.due_set_at,
                "added_at": item.added_at,
                "closed_at": item.closed_at,
                "verification": None if item.verification is None else item.verification.model_dump(mode="json"),
                "verdict": None if item.verdict is None else item.verdict.value,
            }
            for item in view.action_items
        ],
    }


def view_from_document(document: Document) -> ReviewView:
    return ReviewView(
        review_id=document["_id"],
        incident_key=document["incident_key"],
        title=document["title"],
        severity=Severity(document["severity"]),
        status=ReviewStatus(document["status"]),
        owner=document["owner"],
        team=document["team"],
        service=document["service"],
        due_at=document["due_at"],
        due_set_at=document["due_set_at"],
        opened_at=document["opened_at"],
        incident_started_at=document["incident_started_at"],
        incident_resolved_at=document["incident_resolved_at"],
        version=document["version"],
        completed_at=document["completed_at"],
        recurrences=document["recurrences"],
        seen_event_ids=tuple(document["seen_event_ids"]),
        action_items=tuple(
            ActionItemView(
                action_item_id=item["action_item_id"],
                title=item["title"],
                priority=ActionItemPriority(item["priority"]),
                status=ActionItemStatus(item["status"]),
                owner=item["owner"],
                due_at=item["due_at"],
                due_set_at=item["due_set_at"],
                added_at=item["added_at"],
                closed_at=item["closed_at"],
                # Absent from views stored before verifications existed.
                verification=None
                if item.get("verification") is None
                else VerificationPlan.model_validate(item["verification"]),
                verdict=None if item.get("verdict") is None else Verdict(item["verdict"]),
            )
            for item in document["action_items"]
        ),
    )
