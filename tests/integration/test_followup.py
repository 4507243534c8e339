"""Follow-up against real Kafka and the MongoDB-compatible server: idempotent tracking, gauges that survive restarts."""

from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import ReviewOpened, ReviewStatus, Severity
from services.followup.app import create_app
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings
from tests.conftest import Servers
from tests.support.kafka import create_topics, produce, read_topic
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def opened(review_id: str, severity: Severity, status: ReviewStatus = ReviewStatus.OPEN) -> ReviewOpened:
    return ReviewOpened(
        event_id=uuid4(),
        occurred_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        review_id=review_id,
        incident_key=f"generic:{review_id}",
        source="generic",
        title="Queue backlog",
        severity=severity,
        status=status,
        incident_resolved_at=datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
    )


async def scrape(app: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
        text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_each_review_is_counted_once_and_the_gauge_is_rebuilt_after_restart(
    servers: Servers, unique: str
) -> None:
    settings = FollowupSettings(review_events_topic=f"reviews.events.{unique}", group_id=f"followup-{unique}")
    await create_topics(servers.kafka_bootstrap, settings.review_events_topic, settings.dlq_topic)
    critical = opened("r-1", Severity.CRITICAL)
    for event in (
        critical,
        critical,
        opened("r-2", Severity.HIGH),
        opened("r-3", Severity.LOW, ReviewStatus.NOT_REQUIRED),
    ):
        await produce(
            servers.kafka_bootstrap,
            settings.review_events_topic,
            event.model_dump_json().encode(),
            key=event.review_id.encode(),
        )
    await produce(servers.kafka_bootstrap, settings.review_events_topic, b'{"type": "SomethingNew", "x": 1}')
    await produce(servers.kafka_bootstrap, settings.review_events_topic, b"[]")

    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        kafka = KafkaSettings(bootstrap_servers=servers.kafka_bootstrap)
        mongo = MongoSettings(uri=servers.mongodb_uri, database=db.name)
        app = create_app(kafka, mongo, settings)
        async with app.router.lifespan_context(app):
            metrics = await eventually(
                lambda: scrape(app),
                lambda m: (
                    m.get(("lessons_review_events_total", (("outcome", "ignored"), ("type", "other")))) == 1.0
                    and m.get(("lessons_review_events_total", (("outcome", "tracked"), ("type", "ReviewOpened"))))
                    == 3.0
                ),
            )
            dead = await read_topic(servers.kafka_bootstrap, settings.dlq_topic, expect=1)

        assert metrics[("lessons_reviews_opened_total", (("severity", "critical"),))] == 1.0
        assert metrics[("lessons_reviews_opened_total", (("severity", "high"),))] == 1.0
        assert metrics[("lessons_reviews_opened_total", (("severity", "low"),))] == 0.0
        assert metrics[("lessons_reviews_open", (("severity", "critical"),))] == 1.0
        assert metrics[("lessons_reviews_open", (("severity", "high"),))] == 1.0
        assert metrics[("lessons_reviews_open", (("severity", "low"),))] == 0.0
        assert metrics[("lessons_review_events_total", (("outcome", "duplicate"), ("type", "ReviewOpened")))] == 1.0
        assert any(name.startswith("faststream_") for name, _ in metrics)
        assert len(dead) == 1
        assert dead[0].value == b"[]"
        assert await db.followup_reviews.count_documents({}) == 3

        restarted = create_app(kafka, mongo, settings)
        async with restarted.router.lifespan_context(restarted):
            after = await scrape(restarted)
        assert after[("lessons_reviews_open", (("severity", "critical"),))] == 1.0
        assert after[("lessons_reviews_open", (("severity", "high"),))] == 1.0
