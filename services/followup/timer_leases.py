"""How a replica takes a due timer, for every timer collection follow-up keeps: earliest due first, under a lease.

A timer is taken only while unfired and unleased (or its holder's lease ran out), so one replica at a time fires it;
a replica that dies holding it is replaced once the lease runs out.
"""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

Document = dict[str, Any]

# Serves the claim's filter and sort (and the sweep's "anything due?" questions).
UNFIRED_BY_DUE = [("fired_at", ASCENDING), ("due_at", ASCENDING), ("_id", ASCENDING)]


async def ensure_unfired_by_due(timers: AsyncCollection[Document]) -> None:
    await timers.create_index(UNFIRED_BY_DUE, name="unfired_by_due_then_id")


async def claim_earliest_due(
    timers: AsyncCollection[Document], now: datetime, owner: str, lease_until: datetime, *, count_in: str
) -> Document | None:
    """Lease the earliest due, unfired timer nobody holds; ``count_in`` names the field counting its claims."""
    return await timers.find_one_and_update(
        {
            "due_at": {"$lte": now},
            "fired_at": None,
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        },
        {"$set": {"lease_owner": owner, "lease_until": lease_until}, "$inc": {count_in: 1}},
        sort=[("due_at", ASCENDING), ("_id", ASCENDING)],
        # The lease's $or makes some servers (the MongoDB-compatible test server) give up on indexes and scan every
        # timer; MongoDB picks this index anyway.
        hint=UNFIRED_BY_DUE,
        return_document=ReturnDocument.AFTER,
    )
