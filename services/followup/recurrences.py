"""MongoDB adapter: which reviews recurred as which earlier review, and when (``followup_recurrences``).

``ReviewRecurred`` arrives on the new review's key and names the earlier review; the recurrence verification of the
earlier review's items needs it. It is kept here, one document per event (its id is the document id, so a redelivery
changes nothing), rather than in the earlier review's view: that view is written by the consumer of the earlier
review's partition with a compare-and-set on the review's version, which a second writer could not take part in
without losing one of the two changes.
"""

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from schemas import ReviewRecurred
from services.followup.domain.verification import LinkedRecurrence

RECURRENCES = "followup_recurrences"
DUPLICATE_KEY = 11000


class RecurrenceRepository:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self.recurrences: AsyncCollection[dict[str, Any]] = database[RECURRENCES]

    async def ensure_indexes(self) -> None:
        await self.recurrences.create_index([("earlier_review_id", ASCENDING)], name="by_earlier_review")

    async def record(self, event: ReviewRecurred) -> None:
        try:
            await self.recurrences.insert_one(_document(event))
        except DuplicateKeyError:
            return  # recorded already: a redelivery

    async def record_many(self, events: Sequence[ReviewRecurred]) -> None:
        """``record`` for several, in one unordered insert: those recorded already are skipped, the others kept."""
        if not events:
            return
        try:
            await self.recurrences.insert_many([_document(event) for event in events], ordered=False)
        except BulkWriteError as exc:
            if any(error["code"] != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def linked_to(self, earlier_review_id: str) -> tuple[LinkedRecurrence, ...]:
        """The reviews linked as recurrences of ``earlier_review_id``, earliest first."""
        cursor = self.recurrences.find(
            {"earlier_review_id": earlier_review_id}, {"review_id": 1, "incident_key": 1, "occurred_at": 1}
        )
        linked = (
            LinkedRecurrence(document["review_id"], document["incident_key"], document["occurred_at"])
            for document in await cursor.to_list()
        )
        return tuple(sorted(linked, key=lambda one: (one.at, one.review_id)))


def _document(event: ReviewRecurred) -> dict[str, Any]:
    return {
        "_id": str(event.event_id),
        "earlier_review_id": event.earlier_review_id,
        "review_id": event.review_id,
        "incident_key": event.incident_key,
        "matched_on": event.matched_on,
        "occurred_at": event.occurred_at,
    }
