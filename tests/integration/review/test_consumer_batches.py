"""The batch subscriber over real Kafka: offsets are committed only after the whole batch took effect; an unreachable
MongoDB rewinds the batch (nothing lost, nothing doubled); invalid and failing records go to the DLQ one by one."""

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from schemas import IncidentClosed, ReviewOpened
from services.review.domain.batch_opening import BatchOpening
from services.review.domain.record import review_id_for
from tests.conftest import Servers
from tests.integration.review.conftest import ReviewApp, incident, wait_until_announced
from tests.support.kafka import committed_offsets, produce_many, read_to_end, read_topic
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def failing_open(app: ReviewApp, failures: dict[str, Callable[[], Exception | None]]) -> dict[str, int]:
    """Make opening some incidents fail (the callable says how, or None: not this time), alone or with their batch;
    counts the attempts to write each incident's review (with its batch, or alone)."""
    repository = app.repository
    open_review, open_reviews = repository.open_review, repository.open_reviews
    attempts: dict[str, int] = {}

    def attempt(review: Any) -> None:
        attempts[review.incident_key] = attempts.get(review.incident_key, 0) + 1
        failure = failures.get(review.incident_key, lambda: None)()
        if failure is not None:
            raise failure

    async def maybe_failing(review: Any, *args: Any, **kwargs: Any) -> bool:
        attempt(review)
        return await open_review(review, *args, **kwargs)

    async def batch_maybe_failing(batch: BatchOpening, topic: str) -> bool:
        for opened in batch.opened:
            attempt(opened.review)
        return await open_reviews(batch, topic)

    repository.open_review = maybe_failing  # type: ignore[method-assign]
    repository.open_reviews = batch_maybe_failing  # type: ignore[method-assign]
    return attempts


async def produce_incidents(servers: Servers, topic: str, values: list[bytes]) -> None:
    # One key: one partition, so the records keep this order, at offsets 0, 1, 2...
    await produce_many(servers.kafka_bootstrap, topic, [(value, b"same-partition", {}) for value in values])


async def test_an_unreachable_mongodb_mid_batch_commits_nothing_past_it_and_loses_nothing(
    make_review_app: Any, servers: Servers
) -> None:
    closed = [incident(f"RW-{number}") for number in range(6)]
    blocked = incident("RW-3")
    outage = True
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        attempts = failing_open(
            app, {blocked.incident_key: lambda: AutoReconnect("connection refused") if outage else None}
        )
        await produce_incidents(servers, app.settings.closed_topic, [c.model_dump_json().encode() for c in closed])

        # The batch holding RW-3 is rewound again and again: RW-3 is retried, nothing after it is stored (its batch is
        # one transaction: what came before it in the same batch waits too)...
        await eventually(lambda: _attempts_of(attempts, blocked), lambda n: n >= 3)
        stored = {doc["incident_key"] for doc in await app.db.reviews.find({}).to_list()}
        assert stored <= {c.incident_key for c in closed[:3]}
        # ... and no offset is committed past it (offsets 0-2 may be, when they came in a batch of their own).
        assert await committed_offsets(servers.kafka_bootstrap, app.settings.group_id, app.settings.closed_topic) <= 3

        outage = False  # MongoDB is back
        await eventually(lambda: app.db.reviews.count_documents({}), lambda n: n == 6)
        await eventually(
            lambda: committed_offsets(servers.kafka_bootstrap, app.settings.group_id, app.settings.closed_topic),
            lambda n: n == 6,
        )
        await wait_until_announced(app, servers.kafka_bootstrap)
        events = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)
        outbox = await app.db.review_outbox.count_documents({})

    assert outbox == 6  # a redelivered incident writes nothing
    opened = [ReviewOpened.model_validate_json(record.value) for record in events]
    assert sorted(event.incident_key for event in opened) == sorted(c.incident_key for c in closed)
    assert {event.review_id for event in opened} == {review_id_for(c.incident_key) for c in closed}


async def _attempts_of(attempts: dict[str, int], closed: IncidentClosed) -> int:
    return attempts.get(closed.incident_key, 0)


async def test_invalid_and_failing_records_of_a_batch_go_to_the_dlq_one_by_one_and_the_rest_is_committed(
    make_review_app: Any, servers: Servers
) -> None:
    good, failing, later = incident("DL-1"), incident("DL-2"), incident("DL-3")
    values = [
        good.model_dump_json().encode(),
        b'{"schema_version": 1}',
        failing.model_dump_json().encode(),
        good.model_dump_json().encode(),  # a duplicate in the same batch
        later.model_dump_json().encode(),
    ]
    async with make_review_app(with_kafka=True, max_attempts=2) as review_app:
        app: ReviewApp = review_app
        attempts = failing_open(app, {failing.incident_key: lambda: RuntimeError("a bug")})
        await produce_incidents(servers, app.settings.closed_topic, values)
        dead = await read_topic(servers.kafka_bootstrap, app.settings.dlq_topic, expect=2)
        await eventually(
            lambda: committed_offsets(servers.kafka_bootstrap, app.settings.group_id, app.settings.closed_topic),
            lambda n: n == 5,
        )
        stored = sorted(doc["incident_key"] for doc in await app.db.reviews.find({}).to_list())
        await wait_until_announced(app, servers.kafka_bootstrap)
        events = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

    assert stored == [good.incident_key, later.incident_key]
    assert len(events) == 2
    assert [record.value for record in dead] == [values[1], values[2]]  # in partition order
    assert [record.headers["dlq-attempts"] for record in dead] == ["1", "2"]
    assert dead[0].headers["dlq-reason"].startswith("not a valid IncidentClosed v1")
    assert dead[1].headers["dlq-reason"] == "failed after 2 attempts: RuntimeError('a bug')"
    assert [record.headers["dlq-original-offset"] for record in dead] == ["1", "2"]
    assert attempts[failing.incident_key] == 3  # with its batch, then alone twice (REVIEW_MAX_ATTEMPTS)
