"""MongoDB adapter for reviews and their outbox.

A review change and the event announcing it are written in one transaction, so neither exists without the other.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas import Event
from services.review.domain.record import Review

REVIEWS = "reviews"
OUTBOX = "review_outbox"

Document = dict[str, Any]


@dataclass(frozen=True)
class OutboxEntry:
    event_id: str
    topic: str
    key: str
    payload: str
    event_type: str


class ReviewRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._client = database.client
        self.reviews: AsyncCollection[Document] = database[REVIEWS]
        self.outbox: AsyncCollection[Document] = database[OUTBOX]

    async def ensure_indexes(self) -> None:
        await self.reviews.create_index([("incident_key", ASCENDING)], unique=True, name="one_review_per_incident")
        await self.reviews.create_index([("status", ASCENDING), ("due_at", ASCENDING)], name="status_due")
        await self.outbox.create_index([("sent_at", ASCENDING), ("created_at", ASCENDING)], name="unsent_in_order")

    async def open_review(self, review: Review, event: Event, topic: str, now: datetime) -> bool:
        """Store the review and its outbox entry atomically; False if the incident already has a review."""
        entry = {
            "_id": str(event.event_id),
            "topic": topic,
            "key": review.id,
            "event_type": type(event).__name__,
            "payload": event.model_dump_json(),
            "created_at": now,
            "sent_at": None,
        }
        async with self._client.start_session() as session, await session.start_transaction():
            try:
                await self.reviews.insert_one(review.to_document(), session=session)
            except DuplicateKeyError:
                await session.abort_transaction()
                return False
            await self.outbox.insert_one(entry, session=session)
        return True

    async def get(self, review_id: str) -> Document | None:
        return await self.reviews.find_one({"_id": review_id})

    async def latest(self, limit: int) -> list[Document]:
        cursor = self.reviews.find({}).sort([("created_at", -1), ("_id", 1)]).limit(limit)
        return await cursor.to_list(length=limit)

    async def unsent(self, limit: int) -> list[OutboxEntry]:
        cursor = self.outbox.find({"sent_at": None}).sort([("created_at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
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
