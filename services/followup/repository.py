"""MongoDB adapter for follow-up's own view of reviews (collection ``followup_reviews``).

Follow-up keeps its own projection, built from ``reviews.events``, so it never reads review's collections.
"""

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ReviewOpened
from services.followup.domain.tracking import OPEN_STATUSES, tracked_review

TRACKED_REVIEWS = "followup_reviews"

Document = dict[str, Any]


class TrackedReviewRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.reviews: AsyncCollection[Document] = database[TRACKED_REVIEWS]

    async def ensure_indexes(self) -> None:
        await self.reviews.create_index([("status", ASCENDING), ("severity", ASCENDING)], name="status_severity")

    async def track_opened(self, event: ReviewOpened) -> bool:
        """Start tracking the review; False when it was already tracked (a redelivered or duplicate event)."""
        result = await self.reviews.update_one(
            {"_id": event.review_id}, {"$setOnInsert": tracked_review(event)}, upsert=True
        )
        return result.upserted_id is not None

    async def count_open_by_severity(self) -> dict[str, int]:
        pipeline: list[Document] = [
            {"$match": {"status": {"$in": [status.value for status in OPEN_STATUSES]}}},
            {"$group": {"_id": "$severity", "count": {"$sum": 1}}},
        ]
        cursor = await self.reviews.aggregate(pipeline)
        return {doc["_id"]: doc["count"] async for doc in cursor}
