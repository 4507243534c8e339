"""Notify's own MongoDB collections: what it knows of each review, and its messages (the sent ledger).

``notify_messages`` has one document per (event id, recipient, channel): its ``_id`` is that key, unique. A consumed
event inserts its messages (``$setOnInsert``: a redelivered event inserts nothing) before its offset is committed;
the dispatcher sends only ``pending`` messages it holds a lease on and marks them ``sent``. So each key is sent once
in effect; the window in which a second send is possible (after the send, before ``sent`` is written) is in
docs/notify.md.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notify.domain.notices import Notice, ReviewFacts
from services.notify.domain.planning import Planned


def message_key(event_id: str, recipient: str, channel: str) -> str:
    return f"{event_id}/{recipient}/{channel}"


@dataclass(frozen=True)
class SourceRecord:
    """Where the event came from, kept so a message that cannot go is dead-lettered as the original record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> "SourceRecord":
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value or b"",
            tuple((name, bytes(value)) for name, value in record.headers),
            record.timestamp,
        )

    def as_record(self) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            timestamp=self.timestamp,
            timestamp_type=0,
            key=self.key,
            value=self.value,
            checksum=None,
            serialized_key_size=len(self.key or b""),
            serialized_value_size=len(self.value),
            headers=list(self.headers),
        )

    def document(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "value": self.value,
            "headers": [[name, value] for name, value in self.headers],
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "SourceRecord":
        return cls(
            doc["topic"],
            doc["partition"],
            doc["offset"],
            doc.get("key"),
            doc["value"],
            tuple((name, value) for name, value in doc["headers"]),
            doc["timestamp"],
        )


@dataclass(frozen=True)
class QueuedMessage:
    key: str
    recipient: str
    channel: str
    reason: str
    notice: Notice
    attempts: int
    source: SourceRecord
    digest_group: str | None


@dataclass(frozen=True)
class Claim:
    """Messages one dispatcher holds a lease on: one message, or every message of one digest."""

    token: str
    messages: tuple[QueuedMessage, ...]

    @property
    def first(self) -> QueuedMessage:
        return self.messages[0]

    def held(self, status: str | None = "pending") -> dict[str, Any]:
        """The claim's messages while still ours (by ``_id``: the index, not a scan of the leases)."""
        query: dict[str, Any] = {"_id": {"$in": [message.key for message in self.messages]}, "lease": self.token}
        if status is not None:
            query["status"] = status
        return query


def _queued(doc: dict[str, Any]) -> QueuedMessage:
    return QueuedMessage(
        key=doc["_id"],
        recipient=doc["recipient"],
        channel=doc["channel"],
        reason=doc["reason"],
        notice=Notice.model_validate(doc["notice"]),
        attempts=doc.get("attempts", 0),
        source=SourceRecord.from_document(doc["source"]),
        digest_group=doc.get("digest_group"),
    )


class ReviewFactsRepository:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._reviews = database["notify_reviews"]

    async def get(self, review_id: str) -> ReviewFacts | None:
        doc = await self._reviews.find_one({"_id": review_id})
        if doc is None:
            return None
        doc.pop("_id")
        return ReviewFacts.model_validate(doc | {"review_id": review_id})

    async def save(self, facts: ReviewFacts) -> None:
        """Store facts at their version in one write; an older version never overwrites a newer one."""
        doc = facts.model_dump(mode="json", exclude={"review_id"})
        try:
            await self._reviews.update_one(
                {"_id": facts.review_id, "version": {"$lt": facts.version}}, {"$set": doc}, upsert=True
            )
        except DuplicateKeyError:
            return  # the stored facts are as new or newer: the upsert's insert found the review there


class MessageRepository:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._messages = database["notify_messages"]

    async def ensure_indexes(self) -> None:
        # The _id (event id, recipient, channel) is the unique key of the sent ledger.
        await self._messages.create_index([("status", ASCENDING), ("send_at", ASCENDING)], name="due")
        await self._messages.create_index(
            [("recipient", ASCENDING), ("channel", ASCENDING), ("digest_group", ASCENDING), ("status", ASCENDING)],
            name="digest",
        )

    async def enqueue(
        self, notice: Notice, planned: Sequence[Planned], source: SourceRecord, now: datetime
    ) -> list[bool]:
        """Insert each planned message unless its key exists; True for each one inserted (False: a duplicate)."""
        if not planned:
            return []
        operations = []
        for entry in planned:
            delivery = entry.delivery
            key = message_key(notice.event_id, delivery.recipient, delivery.channel)
            doc = {
                "event_id": notice.event_id,
                "event_type": notice.kind,
                "recipient": delivery.recipient,
                "channel": delivery.channel,
                "reason": delivery.reason,
                "notice": notice.model_dump(mode="json"),
                "status": "pending",
                "send_at": entry.timing.send_at,
                "held_for": entry.timing.held_for,
                "digest_group": entry.timing.digest_group,
                "attempts": 0,
                "queued_at": now,
                "source": source.document(),
            }
            operations.append(UpdateOne({"_id": key}, {"$setOnInsert": doc}, upsert=True))
        result = await self._messages.bulk_write(operations, ordered=True)
        inserted = set(result.upserted_ids or {})
        return [index in inserted for index in range(len(operations))]

    async def claim_due(self, now: datetime, lease: timedelta) -> Claim | None:
        """Lease the earliest due message, and with it the rest of its digest; ``None`` when nothing is due."""
        token = uuid.uuid4().hex
        lease_free = {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}
        doc = await self._messages.find_one_and_update(
            {"status": "pending", "send_at": {"$lte": now}, **lease_free},
            {"$set": {"lease": token, "lease_until": now + lease}},
            sort=[("send_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        if doc.get("digest_group") is None:
            return Claim(token, (_queued(doc),))
        await self._messages.update_many(
            {
                "recipient": doc["recipient"],
                "channel": doc["channel"],
                "digest_group": doc["digest_group"],
                "status": "pending",
                "send_at": {"$lte": now},
                **lease_free,
            },
            {"$set": {"lease": token, "lease_until": now + lease}},
        )
        docs = (
            await self._messages.find({"lease": token}).sort([("queued_at", ASCENDING), ("_id", ASCENDING)]).to_list()
        )
        return Claim(token, tuple(_queued(each) for each in docs))

    async def mark_sent(self, claim: Claim, now: datetime) -> int:
        """Record the claim's messages as sent; returns how many were still ours (a lost lease: fewer)."""
        result = await self._messages.update_many(
            claim.held(),
            {"$set": {"status": "sent", "sent_at": now}, "$unset": {"lease": "", "lease_until": ""}},
        )
        return result.modified_count

    async def retry_later(self, claim: Claim, at: datetime, error: str) -> None:
        await self._messages.update_many(
            claim.held(),
            {
                "$set": {"send_at": at, "last_error": error},
                "$inc": {"attempts": 1},
                "$unset": {"lease": "", "lease_until": ""},
            },
        )

    async def mark_failed(self, claim: Claim, now: datetime, error: str) -> None:
        await self._messages.update_many(
            claim.held(),
            {
                "$set": {"status": "failed", "failed_at": now, "last_error": error},
                "$inc": {"attempts": 1},
                "$unset": {"lease": "", "lease_until": ""},
            },
        )

    async def release(self, claim: Claim) -> None:
        await self._messages.update_many(claim.held(None), {"$unset": {"lease": "", "lease_until": ""}})

    async def count(self, query: dict[str, Any]) -> int:
        return await self._messages.count_documents(query)

    async def find(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._messages.find(query).to_list()
