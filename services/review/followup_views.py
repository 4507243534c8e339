"""MongoDB adapter for the follow-up view kept beside each review (``review_followups``, one document per review).

A write is conditional on the version read (``{_id, version}``), so two consumers applying events to the same view
at once (a rebalance hands a partition over) never lose one another's event: the loser reads again and re-applies.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas import AnyFollowupEvent
from services.review.domain.followup_view import FollowupView, apply_followup_event

log = logging.getLogger(__name__)

REVIEW_FOLLOWUPS = "review_followups"
# Concurrent writers to one view are rare (a partition changing hands). Each collision means another writer's event
# landed, so a writer needs at most one attempt per concurrent event; the margin covers a server that lets a read
# trail a write it just acknowledged. Running out is not a poison record: the batch is retried (see ``apply``).
WRITE_ATTEMPTS = 20

Document = dict[str, Any]


class FollowupViews:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = database[REVIEW_FOLLOWUPS]

    async def get(self, review_id: str) -> FollowupView | None:
        document = await self.collection.find_one({"_id": review_id})
        return FollowupView.from_document(document) if document is not None else None

    async def apply(self, event: AnyFollowupEvent, now: Callable[[], datetime]) -> bool:
        """Apply ``event`` to its review's view; False when it was applied already (nothing written)."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self.get(event.review_id)
            view = current or FollowupView(review_id=event.review_id)
            applied = apply_followup_event(view, event, now())
            if applied is None:
                return False
            if await self._write(applied, view.version):
                return True
            log.info("follow-up view of review %s changed while applying %s; again", event.review_id, event.event_id)
        raise RuntimeError(f"the follow-up view of review {event.review_id} kept changing under {event.event_id}")

    async def _write(self, view: FollowupView, read_version: int) -> bool:
        document = view.to_document()
        if read_version == 0:
            try:
                await self.collection.insert_one(document)
            except DuplicateKeyError:
                return False
            return True
        result = await self.collection.replace_one({"_id": view.review_id, "version": read_version}, document)
        return result.matched_count == 1
