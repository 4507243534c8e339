"""Opening a batch of incidents together against the real MongoDB-compatible server (and Kafka for the consumer):
a fixed number of commands whatever the batch's size, and the one-by-one path taking over, with nothing lost or
doubled, when another replica or a person got there first."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from schemas import IncidentClosed, ReviewOpened, ReviewUpdated
from services.review.documents import outbox_entry_of
from services.review.domain.batch_opening import BatchOpening
from services.review.domain.editing import SectionEdit
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review, review_id_for
from services.review.domain.recurrence import RecurrenceQuery
from services.review.metrics import ReviewMetrics
from services.review.repository import ReviewRepository
from services.review.service import ReviewService
from tests.conftest import Servers
from tests.integration.review.conftest import RESOLVED, ReviewApp, incident, wait_until_announced
from tests.support.kafka import produce_many
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# What a driver sends on its own (connection handshakes, monitoring, ending sessions): not the work's round trips.
DRIVER_OWN = {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo"}


class Statements(monitoring.CommandListener):
    """Every statement a client sends, in order: its name, collection and whether it belongs to a transaction."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in DRIVER_OWN:
            target = event.command.get(event.command_name)
            in_transaction = event.command.get("autocommit") is False
            self.sent.append((event.command_name, target if isinstance(target, str) else "", in_transaction))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def watched_service(
    servers: Servers, unique: str, listener: monitoring.CommandListener
) -> AsyncIterator[tuple[ReviewService, ReviewRepository]]:
    """A review service (and its repository) on a database of its own, every command its client sends heard."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        servers.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    name = f"review_batch_{unique}"
    moments = iter(range(1_000_000))
    try:
        repository = ReviewRepository(client[name])
        await repository.ensure_indexes()
        service = ReviewService(
            repository,
            ReviewPolicy(),
            ReviewMetrics.create(),
            events_topic="reviews.events",
            recurrence_window=timedelta(days=90),
            clock=lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC) + timedelta(seconds=next(moments)),
        )
        yield service, repository
    finally:
        await client.drop_database(name)
        await client.close()


def storm(prefix: str, count: int, resolved: datetime) -> list[IncidentClosed]:
    """Ten problems recurring: each incident recurs one stored earlier, or one earlier in the same batch."""
    return [
        incident(f"{prefix}-{number}", service="db", fingerprint=f"disk-{number % 10}", resolved_at=resolved)
        for number in range(count)
    ]


async def commands_to_open(service: ReviewService, commands: Statements, batch: list[IncidentClosed]) -> list[str]:
    commands.sent.clear()
    known = await service.incidents_with_review(closed.incident_key for closed in batch)
    opened = await service.open_for_incidents([closed for closed in batch if closed.incident_key not in known])
    assert all(item.review is not None and item.review.recurrence is not None for item in opened)
    return [command for command, _, _ in commands.sent]


async def test_opening_a_batch_costs_the_same_commands_for_10_incidents_as_for_100(
    servers: Servers, unique: str
) -> None:
    commands = Statements()
    async with watched_service(servers, unique, commands) as (service, _):
        await service.open_for_incidents(storm("FIRST", 10, RESOLVED))
        ten = await commands_to_open(service, commands, storm("TEN", 10, RESOLVED + timedelta(hours=1)))
        hundred = await commands_to_open(service, commands, storm("HUNDRED", 100, RESOLVED + timedelta(hours=2)))

    assert hundred == ten
    assert len(hundred) <= 10
    assert hundred.count("commitTransaction") == 1
    assert "getMore" not in hundred


Hook = Callable[[Sequence[RecurrenceQuery]], Awaitable[None]]


def before_the_transaction(app: ReviewApp, hook: Hook) -> list[str]:
    """Run ``hook`` once, after the first batch's look-ups and before its transaction; returns how each batch's
    transaction ended (``stored``, ``not stored``, or the exception's name)."""
    repository = app.repository
    latest_occurrences, open_reviews = repository.latest_occurrences, repository.open_reviews
    outcomes: list[str] = []

    async def then_hook(queries: Sequence[RecurrenceQuery]) -> list[tuple[Review | None, ...]]:
        found = await latest_occurrences(queries)
        if not outcomes:
            await hook(queries)
        return found

    async def observed(batch: BatchOpening, topic: str) -> bool:
        try:
            stored = await open_reviews(batch, topic)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            raise
        outcomes.append("stored" if stored else "not stored")
        return stored

    repository.latest_occurrences = then_hook  # type: ignore[method-assign]
    repository.open_reviews = observed  # type: ignore[method-assign]
    return outcomes


async def produce(servers: Servers, app: ReviewApp, batch: list[IncidentClosed]) -> None:
    values: list[tuple[bytes, bytes | None, Mapping[str, str]]] = [
        (closed.model_dump_json().encode(), b"same-partition", {}) for closed in batch
    ]
    await produce_many(servers.kafka_bootstrap, app.settings.closed_topic, values)


async def opened_events(app: ReviewApp) -> list[ReviewOpened]:
    entries = await app.db.review_outbox.find({}).to_list()
    events = [event for entry in entries for event in outbox_entry_of(entry).events]
    return [ReviewOpened.model_validate_json(event.payload) for event in events if event.event_type == "ReviewOpened"]


async def test_an_incident_opened_meanwhile_by_another_replica_makes_the_batch_open_one_by_one(
    make_review_app: Any, servers: Servers
) -> None:
    batch = [
        incident(
            f"DUP-{number}", service="db", fingerprint="disk-full", resolved_at=RESOLVED + timedelta(minutes=number)
        )
        for number in range(5)
    ]
    by_review_id = {review_id_for(closed.incident_key): closed for closed in batch}
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app

        async def another_replica_opens_one(queries: Sequence[RecurrenceQuery]) -> None:
            # The last incident of the batch being opened: its transaction then meets the unique index.
            assert (await app.service.open_for_incident(by_review_id[queries[-1].review_id])).review is not None

        outcomes = before_the_transaction(app, another_replica_opens_one)
        await produce(servers, app, batch)
        await wait_until_announced(app, servers.kafka_bootstrap)
        reviews = await app.db.reviews.find({}).to_list()
        opened = await opened_events(app)

    assert outcomes[0] == "not stored"  # the whole batch: nothing of it written, then one by one
    assert sorted(review["incident_key"] for review in reviews) == sorted(closed.incident_key for closed in batch)
    assert sorted(event.incident_key for event in opened) == sorted(closed.incident_key for closed in batch)
    # Each review but the first names an earlier one; none is named twice (a chain, as one by one).
    earlier = [review["recurrence"]["earlier_incident_key"] for review in reviews if review["recurrence"]]
    assert len(earlier) >= len(batch) - 2
    assert len(set(earlier)) == len(earlier)


async def test_an_earlier_review_edited_meanwhile_makes_the_batch_open_one_by_one_keeping_the_edit(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        earlier = await app.open(incident("STALE-0", service="db", fingerprint="disk-full"))
        app.clock.now += timedelta(seconds=1)
        later = [
            incident(
                f"STALE-{number}", service="db", fingerprint="disk-full", resolved_at=RESOLVED + timedelta(hours=number)
            )
            for number in (1, 2)
        ]

        async def a_person_edits_the_earlier_review(_: Sequence[RecurrenceQuery]) -> None:
            await app.service.edit_sections(earlier.id, earlier.version, SectionEdit(owner="erin"), "erin")

        outcomes = before_the_transaction(app, a_person_edits_the_earlier_review)
        await produce(servers, app, later)
        await wait_until_announced(app, servers.kafka_bootstrap)
        await eventually(lambda: app.db.reviews.count_documents({}), lambda n: n == 3)
        stored_earlier = await app.service.get(earlier.id)
        first, second = [await app.service.get(review_id_for(closed.incident_key)) for closed in later]
        earlier_events = await app.events(earlier.id)

    assert outcomes[0] == "StaleVersionError"
    assert stored_earlier.owner == "erin"  # the person's edit kept
    assert stored_earlier.version == 3  # the edit, then one link
    assert stored_earlier.related_reviews == [first.id]
    assert first.recurrence is not None
    assert first.recurrence.earlier_review_id == earlier.id
    assert second.recurrence is not None
    assert second.recurrence.earlier_review_id == first.id
    updates = [event for event in earlier_events if isinstance(event, ReviewUpdated)]
    assert [event.version for event in updates] == [2, 3]  # once each, nothing from the abandoned batch


async def test_the_relay_marks_entries_sent_between_batch_transactions_not_during_one(
    servers: Servers, unique: str
) -> None:
    statements = Statements()
    async with watched_service(servers, unique, statements) as (service, repository):
        await service.open_for_incidents(storm("SENT", 20, RESOLVED))
        sent_ids = [entry.entry_id for entry in await repository.unsent(100)]
        opening_done = asyncio.Event()

        async def relay_marking() -> int:
            marks = 0
            while not opening_done.is_set() or marks == 0:
                await repository.mark_sent(sent_ids, datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
                marks += 1
            return marks

        async def opening() -> None:
            for round_number in range(3):
                await service.open_for_incidents(storm(f"TURN{round_number}", 30, RESOLVED + timedelta(hours=1)))
            opening_done.set()

        statements.sent.clear()
        marks, _ = await asyncio.gather(relay_marking(), opening())

    in_transaction = False
    marks_inside = 0
    for command, collection, part_of_transaction in statements.sent:
        if part_of_transaction and command not in ("commitTransaction", "abortTransaction"):
            in_transaction = True
        elif command in ("commitTransaction", "abortTransaction"):
            in_transaction = False
        elif command == "update" and collection == "review_outbox" and in_transaction:
            marks_inside += 1
    assert [command for command, _, _ in statements.sent].count("commitTransaction") == 3
    assert marks >= 2
    assert marks_inside == 0
