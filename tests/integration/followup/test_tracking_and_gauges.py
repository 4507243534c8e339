"""Follow-up against real Kafka and the MongoDB-compatible server: idempotent tracking, a DLQ for garbage, and
gauges counted in MongoDB, so ``/metrics`` shows the same backlog after a restart."""

from uuid import uuid4

import pytest

from schemas import ActionItemPriority, ReviewStatus, Severity
from tests.conftest import Servers
from tests.integration.followup.support import (
    ManualClock,
    Samples,
    create_followup_topics,
    gauges,
    parts,
    produce_events,
    running_followup,
    scrape,
    settings_for,
)
from tests.support.kafka import produce, read_topic
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration

BACKLOG = (
    "lessons_reviews_open",
    "lessons_reviews_overdue",
    "lessons_action_items_open",
    "lessons_action_items_overdue",
)


def tracked(samples: Samples, event_type: str) -> float:
    return samples.get(("lessons_review_events_total", (("outcome", "tracked"), ("type", event_type))), 0.0)


async def test_events_are_tracked_once_and_the_backlog_gauges_survive_a_restart(servers: Servers, unique: str) -> None:
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    critical, high, low, closed = (ReviewStory(f"{name}-{unique}") for name in ("critical", "high", "low", "closed"))
    critical_opened = critical.opened(severity=Severity.CRITICAL, due_at=T0 + 5 * DAY)
    events = [
        critical_opened,
        critical_opened,  # redelivered: the same event id
        critical.item_added(at=T0, item_id="a-1", due_at=T0 + 3 * DAY, priority=ActionItemPriority.CRITICAL),
        critical.item_added(at=T0, item_id="a-2", due_at=T0 + 30 * DAY, priority=ActionItemPriority.LOW),
        critical_opened.model_copy(update={"event_id": uuid4()}),  # a stale copy: version 1 after version 3
        high.opened(severity=Severity.HIGH, due_at=T0 + 7 * DAY),
        high.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.IN_REVIEW),
        low.opened(severity=Severity.LOW, status=ReviewStatus.NOT_REQUIRED, due_at=None),
        closed.opened(severity=Severity.MEDIUM),
        closed.status(at=T0 + DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.CLOSED),
    ]
    await produce_events(servers, settings.review_events_topic, events)
    await produce(servers.kafka_bootstrap, settings.review_events_topic, b'{"type": "SomethingNew", "x": 1}')
    await produce(servers.kafka_bootstrap, settings.review_events_topic, b"[]")
    await produce(servers.kafka_bootstrap, settings.review_events_topic, b'{"type": "ReviewOpened", "version": 1}')

    clock = ManualClock(T0 + 6 * DAY)  # the critical review and its item a-1 are overdue; the rest is not
    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        async with running_followup(servers, db.name, settings, clock) as app:
            metrics = await eventually(
                lambda: scrape(app),
                lambda m: tracked(m, "ReviewOpened") == 4.0 and tracked(m, "ReviewStatusChanged") == 2.0,
            )
            dead = await read_topic(servers.kafka_bootstrap, settings.dlq_topic, expect=2)
            # Follow-up comes back at day 6: what is still timely fires, reminders whose due date passed do not.
            fired = await parts(app).scheduler.sweep_once(clock.now())
            metrics = await scrape(app)
        assert sorted(timer.event_type for timer in fired) == [
            "ActionItemOverdue",
            "Escalated",
            "ReminderDue",
            "ReminderDue",
            "ReviewOverdue",
        ]
        assert {timer.review_id for timer in fired if timer.event_type == "ReminderDue"} == {high.review_id}

        def sample(name: str, **labels: str) -> float:
            return metrics[(name, tuple(sorted(labels.items())))]

        assert sample("lessons_review_events_total", type="ReviewOpened", outcome="duplicate") == 1
        assert sample("lessons_review_events_total", type="ReviewOpened", outcome="stale") == 1
        assert sample("lessons_review_events_total", type="other", outcome="ignored") == 1
        assert sample("lessons_reviews_opened_total", severity="critical") == 1
        assert sample("lessons_reviews_opened_total", severity="low") == 0  # not_required: no review to write
        assert sample("lessons_incident_duration_seconds_count", severity="low") == 1  # but it counts for MTTR
        assert sample("lessons_reviews_open", status="open", severity="critical") == 1
        assert sample("lessons_reviews_open", status="in_review", severity="high") == 1
        assert sample("lessons_reviews_open", status="open", severity="medium") == 0
        assert sample("lessons_reviews_overdue", severity="critical") == 1
        assert sample("lessons_reviews_overdue", severity="high") == 0
        assert sample("lessons_action_items_open", priority="critical") == 1
        assert sample("lessons_action_items_open", priority="low") == 1
        assert sample("lessons_action_items_overdue", priority="critical") == 1
        assert sample("lessons_action_items_overdue", priority="low") == 0
        assert sample("lessons_dlq_messages_total", topic=settings.dlq_topic) == 2
        assert sample("lessons_followup_timers_expired_total", kind="reminder") == 4
        assert sample("lessons_followup_events_published_total", type="ReminderDue") == 2
        assert any(name.startswith("faststream_") for name, _ in metrics)
        assert sorted(record.value for record in dead) == [b"[]", b'{"type": "ReviewOpened", "version": 1}']
        assert dead[0].headers["dlq-reason"].startswith("not a valid review event")
        assert await db.followup_reviews.count_documents({}) == 4

        async with running_followup(servers, db.name, settings, clock) as restarted:
            after = await scrape(restarted)
        assert gauges(after, *BACKLOG) == gauges(metrics, *BACKLOG)
        assert len(gauges(after, *BACKLOG)) == 4 * 5 + 5 + 4 + 4  # every label combination, zeros included
