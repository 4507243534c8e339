"""The reviews list read through windows of list positions, on the real server: the same pages as a plain query
(every filter, offsets past the first window), exact counts kept by opening and status changes, the one-time backfill
of reviews stored without a position, and a list query that carries the position range."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ReviewEvent, ReviewStatus, Severity
from services.review.documents import filter_query, review_to_document
from services.review.domain.batch_opening import BatchOpening, NewReview
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Participant, ParticipantFunction, Review, open_review
from services.review.domain.workflow import Transition, transition
from services.review.ports import ReviewFilter
from services.review.repository import LIST_POSITION, ReviewRepository
from tests.conftest import Servers
from tests.support.mongo import scratch_database
from tests.unit.review.builders import incident

pytestmark = pytest.mark.integration

BASE = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
NOW = BASE + timedelta(days=10)
TOPIC = "reviews.events"
SEVERITIES = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)
OLD_STATUSES = (ReviewStatus.OPEN, ReviewStatus.IN_REVIEW, ReviewStatus.PUBLISHED, ReviewStatus.CLOSED)
PEOPLE = ("ana", "bo", "cy")
FILTERS = [
    ReviewFilter(),
    ReviewFilter(statuses=(ReviewStatus.OPEN,)),
    ReviewFilter(statuses=(ReviewStatus.OPEN, ReviewStatus.PUBLISHED), severities=(Severity.HIGH,)),
    ReviewFilter(severities=(Severity.LOW, Severity.CRITICAL)),
    ReviewFilter(team="team-1"),
    ReviewFilter(service="svc-2"),
    ReviewFilter(title_contains="disk"),
    ReviewFilter(overdue=True),
    ReviewFilter(overdue=False),
    ReviewFilter(overdue=False, statuses=(ReviewStatus.OPEN, ReviewStatus.CLOSED)),
    ReviewFilter(overdue=True, team="team-0"),
    ReviewFilter(assigned_to="ana"),
    ReviewFilter(assigned_to="bo", overdue=False),
    ReviewFilter(assigned_to="cy", overdue=True, severities=(Severity.HIGH, Severity.MEDIUM)),
    ReviewFilter(team="nobody"),
]
PAGES = [(0, 2), (0, 5), (3, 4), (9, 3), (17, 5), (40, 10)]


def new_review(number: int) -> tuple[Review, ReviewEvent]:
    """Review ``number``: opened ``number`` minutes after BASE, its fields varying with the number."""
    at = BASE + timedelta(minutes=number)
    closed = incident(
        f"LW{number}",
        severity=SEVERITIES[number % 4],
        title=f"{'Disk full' if number % 5 == 0 else 'Latency'} on node {number}",
        service=f"svc-{number % 4}",
        team=f"team-{number % 3}",
        resolved_at=at - timedelta(minutes=1),
        started_at=at - timedelta(minutes=30),
    )
    review, event = open_review(closed, ReviewPolicy().decide(closed), at)
    owner = PEOPLE[number % 3]
    participant = PEOPLE[(number // 3) % 3]
    due = (None, NOW - timedelta(days=1), NOW + timedelta(days=1))[number % 3 if number % 7 else 1]
    changed = review.model_copy(
        update={
            "owner": owner,
            "participants": [Participant(name=participant, function=ParticipantFunction.OPERATIONS)],
            "due_at": due,
        }
    )
    return changed, event


@dataclass
class Stored:
    db: AsyncDatabase[dict[str, Any]]
    repository: ReviewRepository


async def store_old(db: AsyncDatabase[dict[str, Any]], numbers: range) -> None:
    """Reviews as a version without list positions stored them."""
    documents = []
    for number in numbers:
        review, _ = new_review(number)
        documents.append(review_to_document(review.model_copy(update={"status": OLD_STATUSES[number % 4]})))
    await db.reviews.insert_many(documents)


async def open_new(repository: ReviewRepository, numbers: range, *, batch: bool) -> None:
    opened = [new_review(number) for number in numbers]
    if batch:
        news = tuple(NewReview(review, (event,), review.created_at, None) for review, event in opened)
        assert await repository.open_reviews(BatchOpening(news, ()), TOPIC)
    else:
        for review, event in opened:
            assert await repository.open_review(review, [event], TOPIC, review.created_at)


@pytest.fixture
async def stored(servers: Servers, unique: str) -> AsyncIterator[Stored]:
    """20 reviews stored before positions, then backfilled; 12 opened in a batch and 8 one by one after."""
    async with scratch_database(servers.mongodb_uri, f"list_window_{unique}") as db:
        await store_old(db, range(20))
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        await open_new(repository, range(20, 32), batch=True)
        await open_new(repository, range(32, 40), batch=False)
        yield Stored(db, repository)


async def plain(db: AsyncDatabase[dict[str, Any]], where: ReviewFilter) -> list[str]:
    cursor = db.reviews.find(filter_query(where, NOW), {"_id": 1}).sort(
        [("created_at", DESCENDING), ("_id", ASCENDING)]
    )
    return [document["_id"] async for document in cursor]


async def stored_counts(db: AsyncDatabase[dict[str, Any]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    async for document in db.reviews.find({}, {"status": 1, "incident.severity": 1}):
        group = (document["status"], document["incident"]["severity"])
        counts[group] = counts.get(group, 0) + 1
    return counts


async def counter_counts(db: AsyncDatabase[dict[str, Any]]) -> dict[tuple[str, str], int]:
    state = await db.review_counters.find_one({"_id": LIST_POSITION})
    assert state is not None
    return {
        (status, severity): count
        for status, by_severity in state["counts"].items()
        for severity, count in by_severity.items()
        if count
    }


async def test_pages_are_those_of_a_plain_query_for_every_filter(stored: Stored) -> None:
    for where in FILTERS:
        expected = await plain(stored.db, where)
        for offset, limit in PAGES:
            found, total = await stored.repository.find(where, NOW, limit=limit, offset=offset)
            assert [review.id for review in found] == expected[offset : offset + limit], (where, offset, limit)
            assert total == len(expected), (where, offset, limit)
            page = await stored.repository.find_page(where, NOW, limit=limit, offset=offset, exact_total=False)
            assert [review.id for review in page.reviews] == expected[offset : offset + limit], (where, offset)
            if page.total_is_exact:
                assert page.total == len(expected), (where, offset, limit)
            else:
                assert offset + len(page.reviews) <= page.total <= len(expected), (where, offset, limit)


async def test_a_lower_bound_is_said_to_be_one(stored: Stored) -> None:
    """The team filter on the first page of two: the first window holds enough matches, so only it is counted."""
    where = ReviewFilter(team="team-1")
    expected = await plain(stored.db, where)
    page = await stored.repository.find_page(where, NOW, limit=2, offset=0, exact_total=False)
    assert not page.total_is_exact
    assert 2 <= page.total < len(expected)


async def test_positions_follow_opening_order_and_backfill_gives_older_ones_lower(stored: Stored) -> None:
    by_position = stored.db.reviews.find({}, {"list_position": 1, "created_at": 1}).sort("list_position", DESCENDING)
    documents = await by_position.to_list()
    assert len(documents) == 40
    assert [document["list_position"] for document in documents] == list(range(20, -20, -1))
    assert [document["created_at"] for document in documents] == sorted(
        (document["created_at"] for document in documents), reverse=True
    )
    state = await stored.db.review_counters.find_one({"_id": LIST_POSITION})
    assert state is not None
    assert (state["top"], state["bottom"], state["complete"]) == (20, -19, True)


async def test_counts_follow_opening_and_status_changes(stored: Stored) -> None:
    assert await counter_counts(stored.db) == await stored_counts(stored.db)
    # A backfilled review and a newly opened one change status.
    for review_id, to in [("pagerduty:LW4", ReviewStatus.IN_REVIEW), ("pagerduty:LW33", ReviewStatus.CANCELLED)]:
        review = await stored.repository.get(await id_of(stored.db, review_id))
        assert review is not None
        changed, event = transition(review, Transition(to=to, reason="test"), by="alice", now=NOW)
        await stored.repository.save(changed, review.version, [event], TOPIC, NOW)
    assert await counter_counts(stored.db) == await stored_counts(stored.db)
    for where in [ReviewFilter(), ReviewFilter(statuses=(ReviewStatus.CANCELLED, ReviewStatus.IN_REVIEW))]:
        page = await stored.repository.find_page(where, NOW, limit=5, offset=0, exact_total=False)
        assert page.total_is_exact
        assert page.total == len(await plain(stored.db, where))


async def id_of(db: AsyncDatabase[dict[str, Any]], incident_key: str) -> str:
    document = await db.reviews.find_one({"incident_key": incident_key}, {"_id": 1})
    assert document is not None, incident_key
    return str(document["_id"])


async def test_backfill_runs_once_and_a_halfway_run_is_finished_consistently(servers: Servers, unique: str) -> None:
    async with scratch_database(servers.mongodb_uri, f"list_backfill_{unique}") as db:
        await store_old(db, range(12))
        repository = ReviewRepository(db)
        # Before the backfill the list answers from a plain query, still right.
        found, total = await repository.find(ReviewFilter(), NOW, limit=3, offset=0)
        assert ([review.id for review in found], total) == ((await plain(db, ReviewFilter()))[:3], 12)
        await repository.ensure_indexes()
        positions = {document["_id"]: document["list_position"] async for document in db.reviews.find({})}
        # As if a run stopped halfway: some positions and the mark missing (their counts never added).
        unpositioned = sorted(positions)[:5]
        await db.reviews.update_many({"_id": {"$in": unpositioned}}, {"$unset": {"list_position": ""}})
        for document in await db.reviews.find({"_id": {"$in": unpositioned}}).to_list():
            group = f"counts.{document['status']}.{document['incident']['severity']}"
            await db.review_counters.update_one({"_id": LIST_POSITION}, {"$inc": {group: -1}})
        await db.review_counters.update_one({"_id": LIST_POSITION}, {"$unset": {"complete": ""}})
        await repository.ensure_indexes()
        assert {document["_id"]: document["list_position"] async for document in db.reviews.find({})} == positions
        assert await counter_counts(db) == await stored_counts(db)
        await repository.ensure_indexes()  # done: nothing counted twice
        assert await counter_counts(db) == await stored_counts(db)


class FindCommands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "count", "aggregate") and event.command.get(event.command_name) == "reviews":
            command = event.command
            query = command.get("filter") or command.get("query")
            if event.command_name == "aggregate":
                query = command["pipeline"][0].get("$match")
            self.filters.append(dict(query or {}))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_list_reads_a_range_of_positions(stored: Stored, servers: Servers) -> None:
    """The list's first read of reviews is narrowed by the position range, whatever the filter, including
    those a plain query would ask with ``$or``/``$nor``; no read has a top-level ``$or``/``$nor``."""
    listener = FindCommands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        servers.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        repository = ReviewRepository(client[stored.db.name])
        for where in [ReviewFilter(), ReviewFilter(team="team-2"), ReviewFilter(assigned_to="ana", overdue=False)]:
            listener.filters.clear()
            await repository.find_page(where, NOW, limit=2, offset=0, exact_total=False)
            assert listener.filters, where
            assert "$gt" in listener.filters[0].get("list_position", {}), (where, listener.filters)
            for query in listener.filters:
                assert not {"$or", "$nor", "$and"} & set(query), (where, query)
    finally:
        await client.close()
