"""Poison records on the real broker, for each service: the valid records around them take effect once, the poison
reaches the DLQ with its reason (bounded when Kafka refuses the whole copy), and the committed offset passes them all.

The poisons are the ones that stalled or silently lost partitions: a header value that is not UTF-8 (FastStream's
batch parser dropped the whole batch, and the next commit skipped it) and a record whose dead-letter copy is larger
than Kafka's record limit once the ``dlq-*`` headers are added (the publish raised and the batch was retried in a
tight loop forever).
"""

import hashlib
import json
from typing import Any

import pytest

from servicekit.broker import RECORD_LIMIT_BYTES
from servicekit.dead_letters import ORIGINAL_BYTES, ORIGINAL_SHA256, TRUNCATED
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings
from services.followup.app import create_app as create_followup
from services.followup.settings import FollowupSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from tests.conftest import Servers
from tests.integration.followup.support import ManualClock
from tests.integration.review.conftest import review_app
from tests.support.kafka import committed_offsets, create_topics, produce_raw, read_topic
from tests.support.waiting import eventually
from tests.unit.followup.builders import T0, ReviewStory
from tests.unit.review.builders import incident

pytestmark = pytest.mark.integration

NOT_UTF8 = [("trace-id", b"\xff\xfe\x00 not text")]
# Under the record limit on its own, over it once the dead-letter headers are added.
HUGE = b"{" + b"x" * (RECORD_LIMIT_BYTES - 400)
KEY = b"same-partition"


def poisoned(valid: list[bytes], headers: list[tuple[str, bytes]]) -> list[tuple[bytes, bytes | None, Any]]:
    """valid[0], the huge record, valid[1] with a header that is not UTF-8, the rest: all on one partition."""
    first, second, *rest = valid
    return [
        (first, KEY, headers),
        (HUGE, KEY, headers),
        (second, KEY, [*headers, *NOT_UTF8]),
        *((value, KEY, headers) for value in rest),
    ]


async def assert_bounded_dead_letter(servers: Servers, dlq: str) -> None:
    (dead,) = await read_topic(servers.kafka_bootstrap, dlq, expect=1, timeout=30.0)
    assert dead.headers[ORIGINAL_SHA256] == hashlib.sha256(HUGE).hexdigest()
    assert dead.headers[ORIGINAL_BYTES] == str(len(HUGE))
    assert "MessageSizeTooLarge" in dead.headers[TRUNCATED]
    assert dead.headers["dlq-reason"]
    assert dead.value == HUGE[: len(dead.value)]
    assert len(dead.value) < len(HUGE)


async def test_ingest_moves_past_poison_records(servers: Servers, unique: str, mongo: MongoSettings) -> None:
    settings = IngestSettings(
        raw_topic=f"raw.{unique}", closed_topic=f"closed.{unique}", group_id=f"ingest-{unique}", batch_max_records=10
    )
    await create_topics(servers.kafka_bootstrap, settings.raw_topic, settings.closed_topic, settings.dlq_topic)
    forms = [
        json.dumps({"id": f"P-{n}", "title": "Disk full", "status": "resolved", "resolved_at": "2026-11-27T10:00Z"})
        for n in range(3)
    ]
    await produce_raw(
        servers.kafka_bootstrap, settings.raw_topic, poisoned([f.encode() for f in forms], [("source", b"generic")])
    )
    app = create_ingest(KafkaSettings(bootstrap_servers=servers.kafka_bootstrap), settings, mongo)
    async with app.router.lifespan_context(app):
        await eventually(
            lambda: committed_offsets(servers.kafka_bootstrap, settings.group_id, settings.raw_topic),
            lambda offset: offset == 4,
            timeout=30.0,
        )
    closed = await read_topic(servers.kafka_bootstrap, settings.closed_topic, expect=3, timeout=10.0)
    assert sorted(json.loads(record.value)["incident_key"] for record in closed) == [
        "generic:P-0",
        "generic:P-1",
        "generic:P-2",
    ]
    await assert_bounded_dead_letter(servers, settings.dlq_topic)
    assert app.state.metrics.registry.get_sample_value("lessons_dlq_bounded_total", {"topic": settings.dlq_topic}) == 1


async def test_review_moves_past_poison_records(servers: Servers, unique: str) -> None:
    incidents = [incident(f"R-{n}") for n in range(3)]
    async with review_app(servers, unique, with_kafka=False) as review:
        settings = review.settings
    await create_topics(servers.kafka_bootstrap, settings.closed_topic, settings.events_topic, settings.dlq_topic)
    await produce_raw(
        servers.kafka_bootstrap,
        settings.closed_topic,
        poisoned([i.model_dump_json().encode() for i in incidents], [("content-type", b"application/json")]),
    )
    async with review_app(servers, unique, with_kafka=True) as review:
        await eventually(
            lambda: committed_offsets(servers.kafka_bootstrap, settings.group_id, settings.closed_topic),
            lambda offset: offset == 4,
            timeout=30.0,
        )
        stored = await review.db.reviews.distinct("incident_key")
    assert sorted(stored) == sorted(i.incident_key for i in incidents)
    await assert_bounded_dead_letter(servers, settings.dlq_topic)


async def test_followup_moves_past_poison_records(servers: Servers, unique: str, mongo: MongoSettings) -> None:
    settings = FollowupSettings(
        review_events_topic=f"reviews.{unique}",
        events_topic=f"followups.{unique}",
        group_id=f"followup-{unique}",
        sweep_interval_seconds=3_600.0,
    )
    await create_topics(
        servers.kafka_bootstrap, settings.review_events_topic, settings.events_topic, settings.dlq_topic
    )
    opened = [ReviewStory(f"review-{n}").opened() for n in range(3)]
    await produce_raw(
        servers.kafka_bootstrap,
        settings.review_events_topic,
        poisoned([event.model_dump_json().encode() for event in opened], []),
    )
    app = create_followup(KafkaSettings(bootstrap_servers=servers.kafka_bootstrap), mongo, settings, ManualClock(T0))
    async with app.router.lifespan_context(app):
        await eventually(
            lambda: committed_offsets(servers.kafka_bootstrap, settings.group_id, settings.review_events_topic),
            lambda offset: offset == 4,
            timeout=30.0,
        )
        views = [await app.state.followup.views.get(f"review-{n}") for n in range(3)]
    assert [view.version if view else None for view in views] == [1, 1, 1]
    await assert_bounded_dead_letter(servers, settings.dlq_topic)
