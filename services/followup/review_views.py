"""MongoDB adapter for follow-up's view of each review (``followup_reviews``), and the backlog counted from it.

Follow-up keeps its own projection, built from ``reviews.events``, so it never reads review's collections.
"""

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

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
from services.followup.ports import ViewChange

TRACKED_REVIEWS = "followup_reviews"
# Whether a view has an action item done with a verification plan and no verdict yet: the unverified gauge reads only
# those views (and views stored before the field, which lack it) through its index, not every review ever tracked.
AWAITING_VERDICT = "awaiting_verdict"

Document = dict[str, Any]
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
        await self.reviews.create_index([(AWAITING_VERDICT, ASCENDING)], name="awaiting_verdict")

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
            self._remember(replacing, view)
            return True

    async def save_many(self, changes: Sequence[ViewChange]) -> set[str]:
        """Store each ``(replacing, view)`` as ``save`` would, in one unordered bulk write; the ids of those not stored.

        A bulk write's result only counts (matched, inserted), so each write is made to fail on its own when the stored
        view is no longer the one it replaces: a view stored for the first time is an insert (the review's id is taken
        if another writer stored one meanwhile), and a replacement filters on the version it replaces *and upserts*, so
        that a stored view of another version makes it insert a second document with the same id, which fails. Every
        compare-and-set that lost is then a write error naming its operation, and nothing is written for it; a write
        refused for any other reason is reported the same way, so its review can be tried alone.
        """
        if not changes:
            return set()
        operations: list[InsertOne[Document] | ReplaceOne[Document]] = [
            InsertOne(view_to_document(view))
            if replacing is None
            else ReplaceOne({"_id": view.review_id, "version": replacing.version}, view_to_document(view), upsert=True)
            for replacing, view in changes
        ]
        async with self._counting:
            try:
                await self.reviews.bulk_write(operations, ordered=False)
                refused: set[str] = set()
            except BulkWriteError as exc:
                refused = {changes[error["index"]][1].review_id for error in exc.details.get("writeErrors", [])}
            for replacing, view in changes:
                if view.review_id not in refused:
                    self._remember(replacing, view)
            return refused

    def _remember(self, replacing: ReviewView | None, view: ReviewView) -> None:
        if len(self._changes) >= self._changes_kept:
            self._changes.clear()
            self._changes_lost = True
        if not self._changes_lost:
            self._changes.append((replacing, view))

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


def awaiting_verdict(view: ReviewView) -> bool:
    return any(
        item.status is ActionItemStatus.DONE and item.verification is not None and item.verdict is None
        for item in view.action_items
    )


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
        AWAITING_VERDICT: awaiting_verdict(view),
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
