"""The list's filter decided without the server (``domain.list_filter.matches``) answers as the server answers the
plain query (``documents.filter_query``), on many generated reviews and filters; and the list's candidate reads are
served by an index, reading only the candidates of the window (explain on the real server)."""

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ReviewStatus, Severity
from services.review.documents import candidate_queries, filter_query, review_to_document
from services.review.domain.list_filter import FILTER_FIELDS, matches
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Participant, ParticipantFunction, open_review
from services.review.ports import ReviewFilter
from services.review.repository import LIST_POSITION, ReviewRepository
from tests.conftest import Servers
from tests.support.mongo import scratch_database
from tests.unit.review.builders import incident

pytestmark = pytest.mark.integration

# Milliseconds, as stored: a due date equal to now is stored exactly.
NOW = datetime(2026, 11, 10, 8, 0, 0, 123000, tzinfo=UTC)
PEOPLE = ("ana", "bo", "cy", "Ana")
TEAMS = ("team-0", "team-1", "Team-0")
SERVICES = ("svc-0", "svc-1", "svc.1")
TITLES = ("Disk full on node 3", "disk FULL", "Latency (p99) up", "Ärger mit ÜBER", "svc.1 down", "a+b?")
TEXTS = ("disk", "DISK F", "(p99)", "ü", "über", ".", "+b?", "node 3", "zzz", "svc.1", "Ä")
DUES = (None, NOW - timedelta(days=1), NOW, NOW + timedelta(milliseconds=1), NOW + timedelta(days=1))


def generated_document(number: int, rng: random.Random) -> dict[str, Any]:
    at = NOW - timedelta(days=30) + timedelta(minutes=number)
    closed = incident(
        f"LF{number}",
        severity=rng.choice(list(Severity)),
        title=rng.choice(TITLES),
        service=rng.choice(SERVICES),
        team=rng.choice(TEAMS),
        resolved_at=at - timedelta(minutes=1),
        started_at=at - timedelta(minutes=30),
    )
    review, _ = open_review(closed, ReviewPolicy().decide(closed), at)
    names = rng.sample(PEOPLE, rng.randint(0, 2))
    participants = [Participant(name=name, function=ParticipantFunction.OPERATIONS) for name in names]
    changed = review.model_copy(
        update={
            "status": rng.choice(list(ReviewStatus)),
            "owner": rng.choice((*PEOPLE, None)),
            "participants": participants,
            "due_at": rng.choice(DUES),
        }
    )
    document = review_to_document(changed)
    document[LIST_POSITION] = number
    if number % 17 == 0:
        del document["incident"]["team"]  # stored by a version without the field
    return document


def generated_filter(rng: random.Random) -> ReviewFilter:
    def maybe(values: tuple[Any, ...]) -> Any:
        return rng.choice(values) if rng.random() < 0.4 else None

    return ReviewFilter(
        statuses=tuple(rng.sample(list(ReviewStatus), rng.randint(0, 3))) if rng.random() < 0.4 else (),
        severities=tuple(rng.sample(list(Severity), rng.randint(1, 2))) if rng.random() < 0.3 else (),
        service=maybe(SERVICES),
        team=maybe(TEAMS),
        overdue=rng.choice((None, None, True, False)),
        title_contains=maybe(TEXTS),
        assigned_to=maybe(PEOPLE),
    )


@pytest.fixture
async def generated(servers: Servers, unique: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    rng = random.Random(9)
    async with scratch_database(servers.mongodb_uri, f"list_filter_{unique}") as db:
        await db.reviews.insert_many([generated_document(number, rng) for number in range(400)])
        await ReviewRepository(db).ensure_indexes()
        yield db


async def test_matches_decides_as_the_server_does_for_generated_reviews_and_filters(
    generated: AsyncDatabase[dict[str, Any]],
) -> None:
    rng = random.Random(10)
    stored = await generated.reviews.find({}, dict.fromkeys(FILTER_FIELDS, 1)).to_list()
    filters = [generated_filter(rng) for _ in range(150)]
    matched_some = 0
    for where in filters:
        by_server = {document["_id"] async for document in generated.reviews.find(filter_query(where, NOW), {"_id": 1})}
        decided = {document["_id"] for document in stored if matches(where, document, NOW)}
        assert decided == by_server, where
        # The candidates hold every match: reading by the indexed condition alone loses none.
        candidates = set()
        for query in candidate_queries(where, NOW):
            candidates |= {document["_id"] async for document in generated.reviews.find(query, {"_id": 1})}
        assert by_server <= candidates, where
        matched_some += bool(by_server)
    assert matched_some > 30  # the generated filters are not all empty


async def explained(db: AsyncDatabase[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    plan: dict[str, Any] = await db.command("explain", {"find": "reviews", "filter": query}, verbosity="executionStats")
    return plan


@pytest.mark.parametrize(
    "where",
    [
        ReviewFilter(team="team-1"),
        ReviewFilter(service="svc-1", overdue=False),
        ReviewFilter(statuses=(ReviewStatus.OPEN, ReviewStatus.CLOSED), title_contains="disk"),
    ],
)
async def test_a_windowed_candidate_read_examines_only_the_candidates_of_the_window(
    generated: AsyncDatabase[dict[str, Any]], where: ReviewFilter
) -> None:
    for query in candidate_queries(where, NOW):
        windowed = {**query, LIST_POSITION: {"$gt": 300}}
        expected = await generated.reviews.count_documents(windowed)
        stats = (await explained(generated, windowed))["executionStats"]
        assert stats["totalDocsExamined"] == expected < 100, (query, stats)


async def test_assigned_to_reads_owner_and_participant_candidates_from_their_indexes(
    generated: AsyncDatabase[dict[str, Any]],
) -> None:
    for query in candidate_queries(ReviewFilter(assigned_to="bo", team="team-1"), NOW):
        windowed = {**query, LIST_POSITION: {"$gt": 200}}
        expected = await generated.reviews.count_documents(windowed)
        stats = (await explained(generated, windowed))["executionStats"]
        assert stats["totalDocsExamined"] == expected < 150, (query, stats)


async def test_overdue_candidates_come_from_status_due_and_none_overdue_reads_nothing(
    generated: AsyncDatabase[dict[str, Any]],
) -> None:
    for query in candidate_queries(ReviewFilter(team="team-0", overdue=True), NOW):
        overdue = await generated.reviews.count_documents(query)
        assert (await explained(generated, query))["executionStats"]["totalDocsExamined"] == overdue < 100, query
    for never in candidate_queries(ReviewFilter(overdue=True), NOW - timedelta(days=400)):
        assert (await explained(generated, never))["executionStats"]["totalDocsExamined"] == 0, never
