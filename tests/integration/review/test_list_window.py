"""The reviews list read through windows of list positions, on the real server: the same pages as a plain query
(every filter, offsets past the first window), exact counts kept by opening and status changes, the one-time backfill
of reviews stored without a position, and a list query that carries the position range."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ReviewEvent, ReviewStatus, Severity
from services.review import repository as repository_module
from services.review.documents import filter_query, review_to_document
from services.review.domain.batch_opening import BatchOpening, NewReview
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Participant, ParticipantFunction, Review, open_review
from services.review.domain.workflow import Transition, transition
from services.review.list_positions import ListPositioner
from services.review.ports import ReviewFilter
from services.review.repository import LIST_POSITION, ReviewRepository
from tests.conftest import Servers
from tests.integration.review.conftest import VIEWER, ReviewApp, bearer
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually
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
    ReviewFilter(assigned_to="nobody"),
    ReviewFilter(service="svc-1", team="team-2", overdue=True),
    ReviewFilter(service="svc-3", statuses=(ReviewStatus.OPEN, ReviewStatus.CLOSED), overdue=False),
    ReviewFilter(team="team-1", assigned_to="ana", title_contains="DISK"),
    ReviewFilter(assigned_to="bo", title_contains="node 1"),
    ReviewFilter(title_contains="latency", severities=(Severity.HIGH,)),
    ReviewFilter(title_contains="no such title"),
    ReviewFilter(overdue=True, assigned_to="ana", team="team-2"),
    ReviewFilter(statuses=(ReviewStatus.CLOSED,), team="team-0", severities=(Severity.LOW, Severity.MEDIUM)),
]
LIST_ORDER_SPEC = [("list_position", DESCENDING), ("_id", ASCENDING)]
UNLISTED: dict[str, Any] = {"list_position": None}
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
        assert await repository.position_unlisted() == 20
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


async def test_start_up_leaves_the_backfill_to_the_background_and_a_halfway_run_is_finished_consistently(
    servers: Servers, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scratch_database(servers.mongodb_uri, f"list_backfill_{unique}") as db:
        await store_old(db, range(12))
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        # Start-up positioned nothing; meanwhile the list answers from a plain query, still right.
        assert await db.reviews.count_documents({"list_position": {"$exists": True}}) == 0
        found, total = await repository.find(ReviewFilter(), NOW, limit=3, offset=0)
        assert ([review.id for review in found], total) == ((await plain(db, ReviewFilter()))[:3], 12)
        # A run that stops after its first chunk of 5 (the newest), as a replica stopped halfway would.
        monkeypatch.setattr(repository_module, "_POSITION_CHUNK", 5)
        chunks = 0
        position_chunk = repository._position_chunk

        async def first_chunk_only(chunk: list[dict[str, Any]], *, below: bool) -> int:
            nonlocal chunks
            chunks += 1
            if chunks > 1:
                raise RuntimeError("stopped halfway")
            return await position_chunk(chunk, below=below)

        monkeypatch.setattr(repository, "_position_chunk", first_chunk_only)
        with pytest.raises(RuntimeError, match="halfway"):
            await repository.position_unlisted()
        assert await db.reviews.count_documents({"list_position": {"$exists": True}}) == 5
        state = await db.review_counters.find_one({"_id": LIST_POSITION})
        assert state is not None
        assert not state.get("complete")
        monkeypatch.setattr(repository, "_position_chunk", position_chunk)
        assert await repository.position_unlisted() == 7
        by_position = db.reviews.find({}, {"list_position": 1}).sort(LIST_ORDER_SPEC)
        assert [document["list_position"] async for document in by_position] == list(range(0, -12, -1))
        assert [review.id for review in (await repository.find(ReviewFilter(), NOW, limit=12, offset=0))[0]] == (
            await plain(db, ReviewFilter())
        )
        assert await counter_counts(db) == await stored_counts(db)
        assert await repository.position_unlisted() == 0  # done: nothing counted twice
        assert await counter_counts(db) == await stored_counts(db)


async def test_replicas_positioning_at_the_same_time_position_and_count_each_review_once(
    servers: Servers, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scratch_database(servers.mongodb_uri, f"list_replicas_{unique}") as db:
        await store_old(db, range(30))
        replicas = [ReviewRepository(db), ReviewRepository(db), ReviewRepository(db)]
        await replicas[0].ensure_indexes()
        monkeypatch.setattr(repository_module, "_POSITION_CHUNK", 4)
        positioned = await asyncio.gather(*(replica.position_unlisted() for replica in replicas))
        assert sum(positioned) == 30
        positions = [document["list_position"] async for document in db.reviews.find({}, {"list_position": 1})]
        assert sorted(positions) == list(range(-29, 1))
        assert await counter_counts(db) == await stored_counts(db)
        where = ReviewFilter()
        assert [review.id for review in (await replicas[1].find(where, NOW, limit=30, offset=0))[0]] == (
            await plain(db, where)
        )


async def test_a_review_whose_status_changed_after_it_was_read_is_counted_by_its_new_status(
    servers: Servers, unique: str
) -> None:
    async with scratch_database(servers.mongodb_uri, f"list_changed_{unique}") as db:
        await store_old(db, range(3))
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        read = await db.reviews.find({}, {"created_at": 1, "status": 1, "incident.severity": 1}).to_list()
        await db.review_counters.insert_one({"_id": LIST_POSITION, "top": 0, "bottom": 1, "counts": {}})
        # Changed by a writer between the pass's read and its transaction.
        await db.reviews.update_one({"_id": read[0]["_id"]}, {"$set": {"status": "cancelled"}})
        assert await repository._position_chunk(read, below=True) == 3
        assert await counter_counts(db) == await stored_counts(db)


async def test_a_review_opened_by_the_previous_version_after_the_backfill_is_listed_and_counted_once(
    stored: Stored,
) -> None:
    """A rolling deploy: a replica of the previous version opens a review without a position after the backfill was
    marked complete. The next pass gives it the next position at the top and counts it, once."""
    review, _ = new_review(40)
    await stored.db.reviews.insert_one(review_to_document(review))
    where = ReviewFilter(statuses=(review.status,))
    before = await stored.repository.find_page(where, NOW, limit=3, offset=0, exact_total=False)
    assert review.id not in [listed.id for listed in before.reviews]
    # Until it has a position it is neither listed nor counted, even by a read of the whole list.
    team = ReviewFilter(team=review.incident.team)
    found, total = await stored.repository.find(team, NOW, limit=50, offset=0)
    assert ([listed.id for listed in found], total) == ((await plain(stored.db, team))[1:], len(found))
    assert await stored.repository.position_unlisted() == 1
    for asked in [ReviewFilter(), where, ReviewFilter(team=review.incident.team)]:
        expected = await plain(stored.db, asked)
        assert expected[0] == review.id
        page = await stored.repository.find_page(asked, NOW, limit=3, offset=0, exact_total=False)
        assert [listed.id for listed in page.reviews] == expected[:3], asked
        found, total = await stored.repository.find(asked, NOW, limit=3, offset=0)
        assert ([listed.id for listed in found], total) == (expected[:3], len(expected)), asked
    assert (
        await stored.repository.find_page(where, NOW, limit=3, offset=0, exact_total=False)
    ).total == before.total + 1
    assert await counter_counts(stored.db) == await stored_counts(stored.db)
    assert await stored.repository.position_unlisted() == 0
    assert await counter_counts(stored.db) == await stored_counts(stored.db)


async def test_the_background_pass_lists_a_late_review_within_seconds(stored: Stored) -> None:
    positioner = ListPositioner(stored.repository.position_unlisted, poll_seconds=0.05)
    task = asyncio.create_task(positioner.run())
    try:
        review, _ = new_review(41)
        await stored.db.reviews.insert_one(review_to_document(review))

        async def first_listed() -> list[str]:
            found, _ = await stored.repository.find(ReviewFilter(), NOW, limit=1, offset=0)
            return [listed.id for listed in found]

        await eventually(first_listed, lambda ids: ids == [review.id], timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await counter_counts(stored.db) == await stored_counts(stored.db)


async def test_a_pass_with_nothing_to_do_reads_no_review(stored: Stored) -> None:
    """The pass asks for reviews without a position through the ``list_order`` index: the server reads only those."""
    plan = await stored.db.command(
        "explain", {"find": "reviews", "filter": UNLISTED, "projection": {"_id": 1}}, verbosity="executionStats"
    )
    assert "list_order" in str(plan["queryPlanner"]["winningPlan"]), plan
    assert plan["executionStats"]["totalDocsExamined"] == 0, plan
    review, _ = new_review(42)
    await stored.db.reviews.insert_one(review_to_document(review))
    plan = await stored.db.command(
        "explain", {"find": "reviews", "filter": UNLISTED, "projection": {"_id": 1}}, verbosity="executionStats"
    )
    assert plan["executionStats"]["totalDocsExamined"] == 1, plan


async def test_a_rare_filter_gives_the_pages_and_total_of_a_plain_query(servers: Servers, unique: str) -> None:
    """300 reviews, 4 of a rare team (2 backfilled, 2 opened since): windows grow to the whole list, right pages."""
    async with scratch_database(servers.mongodb_uri, f"list_rare_{unique}") as db:
        await store_old(db, range(150))
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        await repository.position_unlisted()
        await open_new(repository, range(150, 300), batch=True)
        await db.reviews.update_many(
            {"incident_key": {"$in": [f"pagerduty:LW{n}" for n in (3, 4, 151, 152)]}},
            {"$set": {"incident.team": "rare"}},
        )
        for where in [ReviewFilter(team="rare"), ReviewFilter(team="rare", overdue=False), ReviewFilter(team="none")]:
            expected = await plain(db, where)
            for offset, limit in [(0, 1), (0, 2), (1, 2), (2, 25), (0, 25), (4, 25)]:
                page = await repository.find_page(where, NOW, limit=limit, offset=offset, exact_total=False)
                assert [review.id for review in page.reviews] == expected[offset : offset + limit], (where, offset)
                assert (page.total, page.total_is_exact) == (len(expected), True), (where, offset)


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


async def test_the_web_list_says_when_its_total_is_a_lower_bound_and_the_api_counts_exactly(
    make_review_app: Callable[..., AbstractAsyncContextManager[ReviewApp]],
) -> None:
    """420 reviews, a third of team-1: the first page's window (100 positions) holds 25 of them, so the page counts
    only there and says "at least"; ``X-Total-Count`` is exact. Unfiltered, the stored counts give the exact total."""
    async with make_review_app(web_session_secret="test-secret-0123456789") as web:
        await store_old(web.db, range(420))
        assert await web.repository.position_unlisted() == 420
        page = await web.http.get("/sign-in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        signed = await web.http.post("/sign-in", data={"token": VIEWER, "csrf_token": csrf.group(1), "next": "/"})
        assert signed.status_code == 303, signed.text
        listed = await web.http.get("/?team=team-1")
        count = re.search(r"At least (\d+) reviews match; page 1 of at least 2\.", listed.text)
        assert count is not None, listed.text
        assert 25 <= int(count.group(1)) < 140
        assert 'href="?team=team-1&amp;page=2"' in listed.text
        everything = await web.http.get("/")
        assert "420 reviews match; page 1 of 17." in everything.text
        answer = await web.http.get("/reviews?team=team-1&limit=25", headers=bearer(VIEWER))
        assert answer.status_code == 200
        assert answer.headers["X-Total-Count"] == "140"
