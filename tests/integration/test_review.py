"""Review against real Kafka and the MongoDB-compatible server: one record per incident, announced once."""

from datetime import UTC, datetime

import pytest

from schemas import IncidentClosed, ReviewOpened, ReviewStatus, Severity
from services.review.app import create_app
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import open_review
from services.review.outbox import OutboxRelay
from services.review.repository import OutboxEntry, ReviewRepository
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings
from tests.conftest import Servers
from tests.support.kafka import create_topics, produce, read_topic
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def incident(incident_id: str, severity: Severity = Severity.CRITICAL) -> IncidentClosed:
    return IncidentClosed.create(
        source="generic",
        source_incident_id=incident_id,
        resolved_at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        title="Payments API returning 502s",
        severity=severity,
        source_severity=severity.value,
        service="payments-api",
        team="payments",
        started_at=datetime(2026, 11, 27, 9, 12, tzinfo=UTC),
    )


@pytest.fixture
async def review_settings(servers: Servers, unique: str) -> ReviewSettings:
    settings = ReviewSettings(
        closed_topic=f"incidents.closed.{unique}",
        events_topic=f"reviews.events.{unique}",
        group_id=f"review-{unique}",
        retry_backoff_seconds=0.05,
    )
    await create_topics(servers.kafka_bootstrap, settings.closed_topic, settings.events_topic, settings.dlq_topic)
    return settings


async def test_duplicates_make_one_review_and_one_event_and_garbage_goes_to_dlq(
    servers: Servers, review_settings: ReviewSettings, unique: str
) -> None:
    event = incident("INC-42")
    body = event.model_dump_json().encode()
    key = event.incident_key.encode()
    for value in (body, b'{"schema_version": 1}', body):
        await produce(servers.kafka_bootstrap, review_settings.closed_topic, value, key=key)

    async with scratch_database(servers.mongodb_uri, f"review_{unique}") as db:
        app = create_app(
            KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
            MongoSettings(uri=servers.mongodb_uri, database=db.name),
            review_settings,
        )
        async with app.router.lifespan_context(app):
            events = await read_topic(servers.kafka_bootstrap, review_settings.events_topic, expect=1, settle=2.0)
            dead = await read_topic(servers.kafka_bootstrap, review_settings.dlq_topic, expect=1)
            reviews = await db.reviews.find({}).to_list()

    assert len(reviews) == 1
    review = reviews[0]
    assert review["incident_key"] == "generic:INC-42"
    assert review["status"] == "open"
    assert review["version"] == 1
    assert review["incident"]["service"] == "payments-api"
    assert review["due_at"] == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # critical: 5 days after resolution
    assert review["analysis"]["what_went_well"] == []
    assert review["action_items"] == []

    assert len(events) == 1
    opened = ReviewOpened.model_validate_json(events[0].value)
    assert opened.review_id == review["_id"]
    assert events[0].key == review["_id"].encode()
    assert opened.status is ReviewStatus.OPEN

    assert len(dead) == 1
    assert dead[0].headers["dlq-reason"].startswith("not a valid IncidentClosed v1")
    assert dead[0].headers["dlq-failed-by"] == "review"


async def test_low_severity_is_recorded_as_not_required(
    servers: Servers, review_settings: ReviewSettings, unique: str
) -> None:
    event = incident("INC-43", Severity.LOW)
    await produce(servers.kafka_bootstrap, review_settings.closed_topic, event.model_dump_json().encode())
    async with scratch_database(servers.mongodb_uri, f"review_{unique}") as db:
        app = create_app(
            KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
            MongoSettings(uri=servers.mongodb_uri, database=db.name),
            review_settings,
        )
        async with app.router.lifespan_context(app):
            events = await read_topic(servers.kafka_bootstrap, review_settings.events_topic, expect=1)
            review = await db.reviews.find_one({"incident_key": "generic:INC-43"})
    assert review is not None
    assert review["status"] == "not_required"
    assert "does not require" in review["policy_reason"]
    assert ReviewOpened.model_validate_json(events[0].value).status is ReviewStatus.NOT_REQUIRED


async def test_outbox_entry_survives_a_failed_publish_and_goes_out_on_the_next_pass(
    servers: Servers, unique: str
) -> None:
    async with scratch_database(servers.mongodb_uri, f"outbox_{unique}") as db:
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        review, opened = open_review(incident("INC-44"), ReviewPolicy().decide(incident("INC-44")), NOW)
        assert await repository.open_review(review, opened, "reviews.events", NOW)
        assert not await repository.open_review(review, opened, "reviews.events", NOW)  # second open: no-op

        published: list[OutboxEntry] = []
        broker_down = True

        async def publish(entry: OutboxEntry) -> None:
            if broker_down:
                raise ConnectionError("Kafka unavailable")
            published.append(entry)

        relay = OutboxRelay(repository, publish, lambda: NOW, poll_seconds=0.05, batch_size=10)
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert await repository.pending_count() == 1

        broker_down = False
        assert await relay.relay_once() == 1
        assert [entry.event_id for entry in published] == [str(opened.event_id)]
        assert await eventually(repository.pending_count, lambda n: n == 0) == 0
        assert await db.reviews.count_documents({}) == 1
