"""What recurrence costs as reviews accumulate, against the real MongoDB-compatible server: the look-up reads a
bounded number of documents, uses its index when it must query, and linking never makes one review grow with every
recurrence of its problem."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.review.documents import review_to_document
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review, open_review
from services.review.domain.recurrence import recurrence_query
from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.integration.review.conftest import RESOLVED, ReviewApp, incident
from tests.support.explain import SentQueries, explained, index_keys

pytestmark = pytest.mark.integration

WINDOW = timedelta(days=90)
STORED = 1_000


@asynccontextmanager
async def watched_repository(servers: Servers, database: str) -> AsyncIterator[tuple[ReviewRepository, SentQueries]]:
    finds = SentQueries()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        servers.mongodb_uri, tz_aware=True, event_listeners=[finds]
    )
    try:
        yield ReviewRepository(client[database]), finds
    finally:
        await client.close()


def bench_review(number: int) -> Review:
    """A review of the same problem (service and normalised title) as every other one here, opened a second later."""
    closed = incident(f"S-{number}", service="db", title=f"Disk {number}% full")
    return open_review(closed, ReviewPolicy().decide(closed), RESOLVED + timedelta(seconds=number))[0]


async def test_finding_the_earlier_occurrence_reads_a_bounded_number_of_documents(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        await app.db.reviews.insert_many([review_to_document(bench_review(number)) for number in range(STORED)])
        app.clock.now = RESOLVED + timedelta(hours=1)
        opened = await app.open(incident("S-first", service="db", title="Disk 99% full"))
        assert opened.recurrence is not None
        assert opened.recurrence.earlier_review_id == bench_review(STORED - 1).id  # the latest, although tied

        async with watched_repository(servers, app.db.name) as (repository, finds):
            app.clock.now += timedelta(seconds=1)
            closed = incident("S-next", service="db", title="Disk 97% full")
            new, _ = open_review(closed, ReviewPolicy().decide(closed), app.clock.now)
            query = recurrence_query(new, WINDOW)
            assert query is not None
            earlier = await repository.earlier_occurrence(query)
        assert earlier is not None
        assert earlier.id == opened.id
        plans = [await explained(app.db, command) for command in finds.commands]
        assert all(index_keys(plan) for plan, _ in plans), plans
        assert sum(documents for _, documents in plans) <= 2, plans  # of 1,001 stored reviews of the same problem


async def test_a_late_incident_finds_its_latest_predecessor_through_the_index(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app

        async def at(hours: int, name: str) -> Review:
            app.clock.now += timedelta(minutes=1)
            return await app.open(
                incident(name, service="db", title="Disk full", resolved_at=RESOLVED + timedelta(hours=hours))
            )

        second = await at(2, "L-2")
        fifth = await at(5, "L-5")
        assert fifth.recurrence is not None
        assert fifth.recurrence.earlier_review_id == second.id
        first = await at(1, "L-1")  # arrives late: resolved before every other one
        assert first.recurrence is None
        async with watched_repository(servers, app.db.name) as (repository, finds):
            closed = incident("L-3", service="db", title="Disk full", resolved_at=RESOLVED + timedelta(hours=3))
            query = recurrence_query(open_review(closed, ReviewPolicy().decide(closed), app.clock.now)[0], WINDOW)
            assert query is not None
            earlier = await repository.earlier_occurrence(query)
        assert earlier is not None
        assert earlier.id == second.id  # the latest resolved before it, neither the group's latest nor the last opened
        plans = [await explained(app.db, command) for command in finds.commands]
        assert len(plans) == 2  # the group's head, then the index
        assert all(index_keys(plan) for plan, _ in plans), plans
        # The index serves the filter (service, title, resolution) and the whole sort, tie-break included.
        assert index_keys(plans[1][0]) == ["incident.service", "title_key", "incident.resolved_at", "created_at", "_id"]


async def test_each_recurrence_links_its_latest_predecessor_so_no_review_grows_with_them(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        chain: list[Review] = []
        for number in range(25):  # all resolved at the same moment: the order they were opened in decides
            app.clock.now += timedelta(seconds=1)
            chain.append(await app.open(incident(f"G-{number}", service="db", title=f"Disk {number}% full")))
        stored = [await app.repository.get(review.id) for review in chain]

    assert chain[0].recurrence is None
    assert [review.recurrence.earlier_review_id for review in chain[1:] if review.recurrence] == [
        review.id for review in chain[:-1]
    ]
    linked = [review for review in stored if review is not None]
    assert len(linked) == len(chain)
    assert (linked[0].related_reviews, linked[0].version) == ([chain[1].id], 2)
    assert max(len(review.related_reviews) for review in linked) == 2  # its predecessor and its successor
