"""Review's ``incidents.closed`` subscriber on batches, with a fake repository, in memory and on the real Kafka.

What the batch subscriber must keep from the one-record-at-a-time one: records in order, each incident on its own,
invalid and failing records to the DLQ one by one, an unreachable MongoDB raising (so the batch is rewound), and the
outbox relay woken once per batch instead of once per record. The tests taking the ``kafka`` fixture run on both
brokers; those about an outage rewinding the batch run in memory only, where the failure reaches the publisher.
"""

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import AutoReconnect, ConnectionFailure

from schemas import IncidentClosed, ReviewEvent
from servicekit.batches import undecoded
from servicekit.broker import create_broker
from services.review.app import subscribe_consumer
from services.review.domain.batch_opening import BatchOpening
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review
from services.review.domain.recurrence import RecurrenceGroup, RecurrenceQuery, occurrence_order, recurrence_groups
from services.review.domain.workflow import is_overdue
from services.review.metrics import ReviewMetrics
from services.review.ports import (
    ActionItemFilter,
    ActionItemRow,
    ReviewFilter,
    ReviewNotFoundError,
    ReviewPage,
    StaleVersionError,
)
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from tests.support.brokers import ConsumerKafka, Produced, RunningKafka
from tests.unit.review.builders import RESOLVED, incident

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@dataclass
class InMemoryReviews:
    """Behaves like ``ReviewRepository`` (the ``ReviewStore`` port): one review per incident key, recurrence by
    fingerprint."""

    reviews: dict[str, Review] = field(default_factory=dict)
    events: list[ReviewEvent] = field(default_factory=list)
    # incident key -> what opening it raises (every time)
    failing: dict[str, Exception] = field(default_factory=dict)
    lookups: int = 0
    lookup_fails: Exception | None = None
    opened_order: list[str] = field(default_factory=list)
    batch_fails: Exception | None = None  # what opening a batch together raises
    batch_lookups: int = 0
    batches_stored: int = 0

    async def incident_keys_with_review(self, incident_keys: Iterable[str]) -> set[str]:
        self.lookups += 1
        if self.lookup_fails is not None:
            raise self.lookup_fails
        return {key for key in incident_keys if key in self.reviews}

    def _latest_in(self, group: RecurrenceGroup, query: RecurrenceQuery) -> Review | None:
        matches = [
            review
            for review in self.reviews.values()
            if group.key in {mine.key for mine in recurrence_groups(review)}
            and review.id != query.review_id
            and query.since <= review.incident.resolved_at <= query.until
        ]
        return max(
            matches,
            key=lambda review: occurrence_order(review.incident.resolved_at, review.created_at, review.id),
            default=None,
        )

    async def earlier_occurrence(self, query: RecurrenceQuery) -> Review | None:
        return next(filter(None, (self._latest_in(group, query) for group in query.groups)), None)

    async def latest_occurrences(self, queries: Sequence[RecurrenceQuery]) -> list[tuple[Review | None, ...]]:
        self.batch_lookups += 1
        return [tuple(self._latest_in(group, query) for group in query.groups) for query in queries]

    async def open_reviews(self, batch: BatchOpening, topic: str) -> bool:
        if self.batch_fails is not None:
            raise self.batch_fails
        for opened in batch.opened:
            if opened.review.incident_key in self.failing:
                raise self.failing[opened.review.incident_key]
            if opened.review.incident_key in self.reviews:
                return False  # the unique index: the transaction writes nothing
        for link in batch.linked:
            stored = self.reviews[link.review.incident_key]
            if stored.version != link.read_version:
                raise StaleVersionError(stored.id, link.read_version, stored.version)
        for opened in batch.opened:
            self.reviews[opened.review.incident_key] = opened.review
            self.events.extend(opened.events)
            self.opened_order.append(opened.review.incident_key)
        for link in batch.linked:
            self.reviews[link.review.incident_key] = link.review
        self.batches_stored += 1
        return True

    async def open_review(
        self,
        review: Review,
        events: Sequence[ReviewEvent],
        topic: str,
        now: datetime,
        *,
        linked_earlier: tuple[Review, int] | None = None,
    ) -> bool:
        if review.incident_key in self.failing:
            raise self.failing[review.incident_key]
        if review.incident_key in self.reviews:
            return False  # the unique index
        self.reviews[review.incident_key] = review
        if linked_earlier is not None:
            self.reviews[linked_earlier[0].incident_key] = linked_earlier[0]
        self.events.extend(events)
        self.opened_order.append(review.incident_key)
        return True

    async def save(
        self, review: Review, read_version: int, events: Sequence[ReviewEvent], topic: str, now: datetime
    ) -> None:
        stored = self.reviews.get(review.incident_key)
        if stored is None:
            raise ReviewNotFoundError(review.id)
        if stored.version != read_version:
            raise StaleVersionError(review.id, read_version, stored.version)
        self.reviews[review.incident_key] = review
        self.events.extend(events)

    async def get(self, review_id: str) -> Review | None:
        return next((review for review in self.reviews.values() if review.id == review_id), None)

    async def find(self, where: ReviewFilter, now: datetime, *, limit: int, offset: int) -> tuple[list[Review], int]:
        def shown(review: Review) -> bool:
            overdue = is_overdue(review, now)
            return (
                (not where.statuses or review.status in where.statuses)
                and (not where.severities or review.incident.severity in where.severities)
                and where.service in (None, review.incident.service)
                and where.team in (None, review.incident.team)
                and (where.overdue is None or where.overdue == overdue)
                and (not where.title_contains or where.title_contains.casefold() in review.incident.title.casefold())
            )

        found = sorted(filter(shown, self.reviews.values()), key=lambda review: review.id)
        found.sort(key=lambda review: review.created_at, reverse=True)  # newest first, then by id: as stored
        return found[offset : offset + limit], len(found)

    async def find_page(
        self, where: ReviewFilter, now: datetime, *, limit: int, offset: int, exact_total: bool
    ) -> ReviewPage:
        return ReviewPage(*await self.find(where, now, limit=limit, offset=offset))

    async def unfinished_action_items(
        self, where: ActionItemFilter, now: datetime, *, limit: int, offset: int
    ) -> tuple[list[ActionItemRow], int]:
        rows = [
            ActionItemRow(review.id, review.incident.title, review.incident.team, item)
            for review in self.reviews.values()
            for item in review.action_items
            if item.unfinished
            and where.owner in (None, item.owner)
            and where.team in (None, review.incident.team)
            and (not where.categories or item.category in where.categories)
            and (not where.priorities or item.priority in where.priorities)
            and (not where.overdue_only or (item.due_at is not None and item.due_at <= now))
        ]
        rows.sort(key=lambda row: (row.item.due_at is None, row.item.due_at or now, row.review_id, row.item.id))
        return rows[offset : offset + limit], len(rows)


@dataclass
class Harness:
    broker: KafkaBroker
    repository: InMemoryReviews
    metrics: ReviewMetrics
    settings: ReviewSettings
    wakes: list[int]
    dead: list[tuple[bytes, dict[str, str]]]

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def run(self, kafka: ConsumerKafka) -> AbstractAsyncContextManager[RunningKafka]:
        """The consumer running on ``kafka``, its DLQ observed."""
        settings = self.settings
        return kafka.running(
            self.broker, consumes=settings.closed_topic, group=settings.group_id, outputs=[settings.dlq_topic]
        )


def harness(kafka: ConsumerKafka | None = None, unique: str = "memory", **overrides: Any) -> Harness:
    """The consumer on a broker for ``kafka`` (none: a plain one for ``TestKafkaBroker``); ``dead`` is memory only."""
    topics = {"closed_topic": f"incidents.closed.{unique}", "group_id": f"review-{unique}"}
    settings = ReviewSettings(**{"max_attempts": 3, "retry_backoff_seconds": 0.0, **topics, **overrides})
    repository = InMemoryReviews()
    metrics = ReviewMetrics.create()
    wakes: list[int] = []
    service = ReviewService(
        repository,
        ReviewPolicy(),
        metrics,
        events_topic=settings.events_topic,
        recurrence_window=timedelta(days=90),
        clock=lambda: NOW,
        on_commit=lambda: wakes.append(1),
    )
    if kafka is None:
        broker = KafkaBroker()
    else:
        broker = create_broker(kafka.settings(), client_id="review", registry=metrics.registry, graceful_timeout=5)
    subscribe_consumer(broker, service, metrics, settings, lambda: NOW)
    dead: list[tuple[bytes, dict[str, str]]] = []

    if kafka is None:

        @broker.subscriber(settings.dlq_topic, decoder=undecoded)
        async def on_dead(message: KafkaMessage) -> None:
            dead.append((message.body, message.headers))

    return Harness(broker, repository, metrics, settings, wakes, dead)


def body(closed: IncidentClosed) -> bytes:
    return closed.model_dump_json().encode()


async def produce_batch(running: RunningKafka, topic: str, *values: bytes) -> None:
    """One batch in memory; on the real Kafka one key, so one partition and this order (batches as Kafka makes them)."""
    key = None if running.mode == "memory" else b"one-partition"
    records: list[Produced] = [(value, key, {}) for value in values]
    await running.produce(topic, records, one_batch=key is None)
    await running.handled()


async def test_a_batch_is_handled_in_order_with_the_dlq_per_record_and_one_wake_up(
    kafka: ConsumerKafka, unique: str
) -> None:
    h = harness(kafka, unique)
    first = incident("B-1", fingerprint="disk-full")
    second = incident("B-2", fingerprint="disk-full", resolved_at=RESOLVED + timedelta(hours=1))
    failing = incident("B-3")
    h.repository.failing[failing.incident_key] = RuntimeError("a bug")
    async with h.run(kafka) as running:
        await produce_batch(
            running, h.settings.closed_topic, body(first), b"{not json", body(second), body(first), body(failing)
        )
        dead = await running.records(h.settings.dlq_topic)

    assert h.repository.opened_order == [first.incident_key, second.incident_key]
    # In order and each on its own: the second sees the first, opened earlier in the same batch.
    later = h.repository.reviews[second.incident_key]
    assert later.recurrence is not None
    assert later.recurrence.earlier_review_id == h.repository.reviews[first.incident_key].id
    assert [type(event).__name__ for event in h.repository.events] == [
        "ReviewOpened",
        "ReviewOpened",
        "ReviewRecurred",
        "ReviewUpdated",
    ]
    if kafka.mode == "memory":  # one batch for sure; the real Kafka may split the five records
        assert h.wakes == [1]  # once for the batch, not once per review
        assert h.repository.lookups == 1  # one look-up for the whole batch
    else:
        assert 1 <= len(h.wakes) <= h.repository.lookups <= 5
    assert h.value("lessons_incident_closed_duplicates_total") == 1  # B-1 again, later in the same batch
    assert [record.value for record in dead] == [b"{not json", body(failing)]
    assert dead[0].headers["dlq-attempts"] == "1"
    assert dead[0].headers["dlq-reason"].startswith("not a valid IncidentClosed v1")
    assert dead[1].headers["dlq-attempts"] == "3"
    assert dead[1].headers["dlq-reason"] == "failed after 3 attempts: RuntimeError('a bug')"


async def test_incidents_known_to_have_a_review_are_skipped_without_writing_or_waking(
    kafka: ConsumerKafka, unique: str
) -> None:
    h = harness(kafka, unique)
    closed = incident("K-1")
    async with h.run(kafka) as running:
        await produce_batch(running, h.settings.closed_topic, body(closed))
        await produce_batch(running, h.settings.closed_topic, body(closed), body(closed))

    assert h.repository.opened_order == [closed.incident_key]
    assert h.value("lessons_incident_closed_duplicates_total") == 2
    assert h.wakes == [1]  # the second batch committed nothing


async def test_a_failed_look_up_only_costs_the_shortcut_the_unique_index_still_decides(
    kafka: ConsumerKafka, unique: str
) -> None:
    h = harness(kafka, unique)
    closed = incident("L-1")
    async with h.run(kafka) as running:
        await produce_batch(running, h.settings.closed_topic, body(closed))
        h.repository.lookup_fails = RuntimeError("the look-up broke")
        await produce_batch(running, h.settings.closed_topic, body(closed), body(incident("L-2")))
        dead = await running.records(h.settings.dlq_topic)

    assert h.repository.opened_order == [closed.incident_key, "pagerduty:L-2"]
    assert h.value("lessons_incident_closed_duplicates_total") == 1
    assert dead == []


async def test_an_unreachable_mongodb_while_opening_the_batch_together_rewinds_it_with_nothing_stored() -> None:
    h = harness()
    h.repository.failing["pagerduty:A-2"] = AutoReconnect("connection refused")
    batch = (body(incident("A-1")), body(incident("A-2")), b"{not json", body(incident("A-1")))
    async with TestKafkaBroker(h.broker) as broker:
        with pytest.raises(ConnectionFailure):
            await broker.publish_batch(*batch, topic=h.settings.closed_topic)

        assert h.repository.opened_order == []  # one transaction: all or nothing
        assert h.dead == []  # nor is anything sent to the DLQ or counted: the whole batch comes again
        assert h.value("lessons_incident_closed_duplicates_total") == 0
        assert h.wakes == []

        del h.repository.failing["pagerduty:A-2"]  # reachable again: the batch is redelivered
        await broker.publish_batch(*batch, topic=h.settings.closed_topic)

    assert h.repository.opened_order == ["pagerduty:A-1", "pagerduty:A-2"]
    assert [value for value, _ in h.dead] == [b"{not json"]  # once
    assert h.value("lessons_incident_closed_duplicates_total") == 1  # A-1's second copy


async def test_an_unreachable_mongodb_raises_so_the_batch_is_rewound_and_what_was_stored_is_announced() -> None:
    h = harness()
    stored, unreachable, after = incident("U-1"), incident("U-2"), incident("U-3")
    h.repository.batch_fails = RuntimeError("the batch could not be opened together")  # so: one by one
    h.repository.failing[unreachable.incident_key] = AutoReconnect("connection refused")
    async with TestKafkaBroker(h.broker) as broker:
        with pytest.raises(ConnectionFailure):
            await broker.publish_batch(body(stored), body(unreachable), body(after), topic=h.settings.closed_topic)

    assert h.repository.opened_order == [stored.incident_key]  # the rest waits for the redelivery
    assert h.dead == []  # an outage never sends records to the DLQ
    assert h.wakes == [1]  # U-1's events go out although the batch failed


async def test_an_unreachable_mongodb_at_the_look_up_rewinds_the_batch_before_anything_is_done() -> None:
    h = harness()
    h.repository.lookup_fails = AutoReconnect("connection refused")
    async with TestKafkaBroker(h.broker) as broker:
        with pytest.raises(ConnectionFailure):
            await broker.publish_batch(body(incident("N-1")), b"{not json", topic=h.settings.closed_topic)

    assert h.repository.opened_order == []
    assert h.dead == []
    assert h.wakes == []


async def test_wake_ups_are_held_back_only_in_the_task_handling_the_batch() -> None:
    repository = InMemoryReviews()
    wakes: list[str] = []
    service = ReviewService(
        repository,
        ReviewPolicy(),
        ReviewMetrics.create(),
        events_topic="reviews.events",
        recurrence_window=timedelta(days=90),
        clock=lambda: NOW,
        on_commit=lambda: wakes.append("wake"),
    )
    in_batch = asyncio.Event()

    async def batch() -> None:
        with service.announcing_once():
            await service.open_for_incident(incident("T-1"))
            in_batch.set()
            await asyncio.sleep(0.05)
            await service.open_for_incident(incident("T-2"))
            wakes.append("batch done")

    async def someone_else() -> None:  # e.g. an API request served meanwhile
        await in_batch.wait()
        await service.open_for_incident(incident("T-3"))
        wakes.append("api done")

    await asyncio.gather(batch(), someone_else())
    assert wakes == ["wake", "api done", "batch done", "wake"]


def _service(repository: InMemoryReviews) -> ReviewService:
    ticks = iter(range(1_000_000))
    return ReviewService(
        repository,
        ReviewPolicy(),
        ReviewMetrics.create(),
        events_topic="reviews.events",
        recurrence_window=timedelta(days=90),
        clock=lambda: NOW + timedelta(seconds=next(ticks)),  # every review opened after the one before
    )


def _links(repository: InMemoryReviews) -> tuple[object, ...]:
    """What opening decided, without the times: each review's links and version, and the events in order."""
    reviews = sorted(
        (
            review.incident_key,
            review.version,
            review.recurrence.earlier_incident_key if review.recurrence else None,
            review.recurrence.matched_on if review.recurrence else None,
            tuple(review.related_reviews),
            review.recurred_after_remediation,
        )
        for review in repository.reviews.values()
    )
    events = [(type(event).__name__, event.review_id, event.version, event.event_id) for event in repository.events]
    return tuple(reviews), tuple(events)


def _recurring_batches() -> tuple[list[IncidentClosed], list[IncidentClosed]]:
    hour = timedelta(hours=1)
    first = [
        incident("X-1", fingerprint="disk-full"),
        incident("S-1", title="Checkout slow", service="checkout"),
    ]
    second = [
        incident("X-2", fingerprint="disk-full", resolved_at=RESOLVED + hour),
        incident("X-3", fingerprint="disk-full", resolved_at=RESOLVED + 2 * hour),  # recurs X-2, of this batch
        incident("X-L", fingerprint="disk-full", resolved_at=RESOLVED + hour / 2),  # late: recurs X-1, stored
        incident("S-2", title="Checkout slow", service="checkout", resolved_at=RESOLVED + hour),
        # A fingerprint nobody had, but the service and title of S-1 and S-2: the later of them, S-2.
        incident("S-3", title="Checkout slow", service="checkout", fingerprint="new", resolved_at=RESOLVED + 3 * hour),
        incident("S-4", title="Checkout slow", service="checkout", fingerprint="new", resolved_at=RESOLVED + 4 * hour),
        incident("X-4", fingerprint="disk-full", resolved_at=RESOLVED + 2 * hour),  # same time as X-3: opened later
        incident("Q-1", title="Queue full", service="queue"),  # recurs nothing
    ]
    return first, second


async def test_a_batch_opened_together_links_as_opening_its_incidents_one_by_one_would() -> None:
    first, second = _recurring_batches()
    one_by_one, together = InMemoryReviews(), InMemoryReviews()
    alone, batched = _service(one_by_one), _service(together)
    for closed in first:
        await alone.open_for_incident(closed)
    await batched.open_for_incidents(first)
    for closed in second:
        await alone.open_for_incident(closed)
    opened = await batched.open_for_incidents(second)

    assert _links(together) == _links(one_by_one)
    assert [item.review.incident_key if item.review else None for item in opened] == [c.incident_key for c in second]
    assert together.batches_stored == 2
    assert together.batch_lookups == 2
    linked_twice = together.reviews["pagerduty:X-1"]  # by X-2 and by the late X-L: one version per link
    assert linked_twice.version == 3
    assert linked_twice.related_reviews == [together.reviews[key].id for key in ("pagerduty:X-2", "pagerduty:X-L")]
    assert together.reviews["pagerduty:X-4"].recurrence is not None
    assert together.reviews["pagerduty:X-4"].recurrence.earlier_incident_key == "pagerduty:X-3"
    assert together.reviews["pagerduty:S-3"].recurrence is not None
    assert together.reviews["pagerduty:S-3"].recurrence.earlier_incident_key == "pagerduty:S-2"
    assert together.reviews["pagerduty:S-4"].recurrence is not None
    assert together.reviews["pagerduty:S-4"].recurrence.earlier_incident_key == "pagerduty:S-3"  # by fingerprint


async def test_an_incident_twice_in_a_batch_opens_once_and_the_second_is_a_duplicate() -> None:
    repository = InMemoryReviews()
    twice = incident("D-1", fingerprint="disk-full")
    opened = await _service(repository).open_for_incidents([twice, incident("D-2"), twice])

    assert [item.review is not None for item in opened] == [True, True, False]
    assert repository.opened_order == ["pagerduty:D-1", "pagerduty:D-2"]
    assert [type(event).__name__ for event in repository.events] == [
        "ReviewOpened",
        "ReviewOpened",
        "ReviewRecurred",
        "ReviewUpdated",
    ]


async def test_the_consumer_skips_reviewed_incidents_and_opens_the_rest_together() -> None:
    h = harness()
    reviewed = incident("R-1", fingerprint="disk-full")
    later = incident("R-2", fingerprint="disk-full", resolved_at=RESOLVED + timedelta(hours=1))
    async with TestKafkaBroker(h.broker) as broker:
        await broker.publish_batch(body(reviewed), topic=h.settings.closed_topic)
        await broker.publish_batch(body(reviewed), body(later), body(later), topic=h.settings.closed_topic)

    assert h.repository.batches_stored == 2  # each batch in one transaction
    assert h.repository.opened_order == [reviewed.incident_key, later.incident_key]
    recurrence = h.repository.reviews[later.incident_key].recurrence
    assert recurrence is not None
    assert recurrence.earlier_incident_key == reviewed.incident_key
    assert h.value("lessons_incident_closed_duplicates_total") == 2  # R-1 known, R-2 twice in the batch
    assert h.value("lessons_review_records_created_total", status="open", severity="critical") == 2
    assert h.wakes == [1, 1]


async def test_a_batch_that_cannot_be_opened_together_is_opened_one_by_one() -> None:
    h = harness()
    h.repository.batch_fails = StaleVersionError("an-earlier-review", 1, 2)
    async with TestKafkaBroker(h.broker) as broker:
        await broker.publish_batch(body(incident("F-1")), body(incident("F-2")), topic=h.settings.closed_topic)

    assert h.repository.batches_stored == 0
    assert h.repository.opened_order == ["pagerduty:F-1", "pagerduty:F-2"]
    assert h.dead == []
    assert h.wakes == [1]
