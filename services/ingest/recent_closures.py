"""MongoDB adapter remembering which incident keys ingest published recently (collection ``ingest_recent_closures``).

Ingest records a key only after Kafka acknowledged its publish: a crash in between re-publishes on redelivery (a
harmless duplicate, since review is idempotent) instead of losing the incident. A TTL index keeps the collection to
the window.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

RECENT_CLOSURES = "ingest_recent_closures"
DUPLICATE_KEY = 11000


class RecentClosures:
    def __init__(self, database: AsyncDatabase[dict[str, Any]], window: timedelta) -> None:
        self._closures: AsyncCollection[dict[str, Any]] = database[RECENT_CLOSURES]
        self.window = window

    async def ensure_indexes(self) -> None:
        await self._closures.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0, name="expire_after_window")

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]:
        wanted = list(set(keys))
        if not wanted:
            return set()
        cursor = self._closures.find({"_id": {"$in": wanted}, "published_at": {"$gte": since}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        """Record ``keys`` as published at ``now``, in one insert; only keys already recorded are then updated.

        Almost every key is new, and an insert costs the server a fraction of an upsert (on SecantusDB a fifth); a key
        still recorded (published again after its window, before the TTL monitor removed it) fails the insert on its
        id and gets its time moved by an update, so the window counts from its latest publish.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return
        expire_at = now + self.window
        try:
            await self._closures.insert_many(
                [{"_id": key, "published_at": now, "expire_at": expire_at} for key in wanted], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            recorded = [wanted[error["index"]] for error in errors]
        else:
            return
        await self._closures.bulk_write(
            [
                UpdateOne({"_id": key}, {"$set": {"published_at": now, "expire_at": expire_at}}, upsert=True)
                for key in recorded
            ],
            ordered=False,
        )
