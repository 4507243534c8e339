"""Queries review runs per event or per relay pass use an index that serves their filter and their whole sort."""

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.integration.review.conftest import ReviewApp, incident
from tests.support.explain import SentQueries, explained, index_keys

pytestmark = pytest.mark.integration


async def test_the_outbox_pending_query_is_served_by_an_index_on_its_filter_and_one_field_sort(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        for number in range(20):
            await app.open(incident(f"O-{number}"))
        sent = SentQueries()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            servers.mongodb_uri, tz_aware=True, event_listeners=[sent]
        )
        try:
            assert len(await ReviewRepository(client[app.db.name]).unsent(5)) == 5
        finally:
            await client.close()
        (command,) = sent.commands
        plan, _ = await explained(app.db, command)
    # One sort field, the order key (its tie-break, the event id, is its last part): a server that serves only a
    # one-field sort from an index serves this one.
    assert list(command["sort"]) == ["order"]
    assert index_keys(plan) == [*command["filter"], *command["sort"]]
