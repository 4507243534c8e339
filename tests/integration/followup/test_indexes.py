"""Queries follow-up runs per event or per sweep use an index that serves their filter and their whole sort."""

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.followup.domain.policy import FollowupPolicy
from services.followup.review_views import ReviewViewRepository
from services.followup.timers_store import TimerRepository
from services.followup.tracker import ReviewTracker
from tests.conftest import Servers
from tests.support.explain import SentQueries, explained, index_keys
from tests.support.mongo import scratch_database
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration


async def test_claiming_the_earliest_due_timer_is_served_by_an_index_ending_in_its_tie_break(
    servers: Servers, unique: str
) -> None:
    sent = SentQueries()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        servers.mongodb_uri, tz_aware=True, event_listeners=[sent]
    )
    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        try:
            watched = client[db.name]
            timers, views = TimerRepository(watched), ReviewViewRepository(watched)
            await timers.ensure_indexes()
            await views.ensure_indexes()
            tracker = ReviewTracker(views, timers, FollowupPolicy())
            for number in range(10):
                await tracker.track(ReviewStory(f"r-{number}").opened(at=T0, due_at=T0 + 7 * DAY))
            sent.commands.clear()
            assert await timers.claim_due(T0 + 30 * DAY, "replica", T0 + 31 * DAY) is not None
        finally:
            await client.close()
        (command,) = sent.commands
        # The same filter and sort as a find: what the server plans for findAndModify.
        find = {"find": command["findAndModify"], "filter": command["query"], "sort": command["sort"], "limit": 1}
        find |= {"hint": command["hint"]} if "hint" in command else {}
        plan, _ = await explained(db, find)
    assert list(command["sort"]) == ["due_at", "_id"]
    assert index_keys(plan) == ["fired_at", "due_at", "_id"]
