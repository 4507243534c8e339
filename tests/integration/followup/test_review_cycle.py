"""One review through its whole follow-up cycle, on real Kafka and MongoDB, with a clock the test moves.

Opened, an action item added (and its due date moved), reminders, overdue, escalations, published late, the item
done, the effectiveness check, closed: every follow-up event appears on ``followups.events`` once, in order.
"""

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from schemas import ActionItemStatus, Event, ReviewStatus, followup_event_adapter, followup_event_id
from tests.conftest import Servers
from tests.integration.followup.support import (
    ManualClock,
    create_followup_topics,
    parts,
    produce_events,
    running_followup,
    scrape,
    settings_for,
    tracked_at_version,
)
from tests.support.kafka import read_to_end
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)


async def gauge_reaches(registry: CollectorRegistry, name: str, labels: dict[str, str], value: float) -> None:
    async def sample() -> float | None:
        return registry.get_sample_value(name, labels)

    await eventually(sample, lambda seen: seen == value, timeout=10.0, every=0.05)


async def test_a_review_is_followed_from_opening_to_its_effectiveness_check(servers: Servers, unique: str) -> None:
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    clock = ManualClock(T0)
    story = ReviewStory(f"r-{unique}")
    rid = story.review_id

    async with (
        scratch_database(servers.mongodb_uri, f"followup_{unique}") as db,
        running_followup(servers, db.name, settings, clock) as app,
    ):
        scheduler = parts(app).scheduler

        async def sweep_at(moment: timedelta) -> list[str]:
            clock.set(T0 + moment)
            return [timer.timer_id for timer in await scheduler.sweep_once(clock.now())]

        async def tell(*events: Event) -> None:
            await produce_events(servers, settings.review_events_topic, events)
            await tracked_at_version(app, rid, story.version)

        # Opened, due in 7 days; an action item due on day 18, moved on day 2 to day 20.
        await tell(
            story.opened(at=T0, due_at=T0 + 7 * DAY),
            story.item_added(at=T0 + DAY, due_at=T0 + 18 * DAY),
            story.item_updated(at=T0 + 2 * DAY, due_at=T0 + 20 * DAY, changed=("due_at",)),
        )
        assert await sweep_at(5 * DAY - SECOND) == []  # nothing fires early
        assert await sweep_at(5 * DAY) == [f"{rid}:reminder:review:2d@20261205T090000Z"]
        assert await sweep_at(6 * DAY) == [f"{rid}:reminder:review:1d@20261205T090000Z"]
        assert await sweep_at(7 * DAY) == [f"{rid}:overdue:review:0@20261205T090000Z"]
        metrics = parts(app).metrics.registry
        assert metrics.get_sample_value("lessons_reviews_overdue", {"severity": "high"}) == 1
        assert await sweep_at(9 * DAY) == [f"{rid}:escalation:review:1@20261205T090000Z"]
        assert await sweep_at(14 * DAY) == [f"{rid}:escalation:review:2@20261205T090000Z"]

        # Published late: the review's own timers are done with; the item's go on.
        await tell(story.status(at=T0 + 15 * DAY, from_status=ReviewStatus.OPEN, to_status=ReviewStatus.PUBLISHED))
        # The gauges are refreshed after the view is stored, so wait for them rather than race the handler.
        await gauge_reaches(metrics, "lessons_reviews_overdue", {"severity": "high"}, 0)
        assert await sweep_at(18 * DAY) == [f"{rid}:reminder:item.a-1:2d@20261218T090000Z"]
        assert await sweep_at(19 * DAY) == [f"{rid}:reminder:item.a-1:1d@20261218T090000Z"]
        assert await sweep_at(20 * DAY) == [f"{rid}:overdue:item.a-1:0@20261218T090000Z"]
        assert metrics.get_sample_value("lessons_action_items_overdue", {"priority": "high"}) == 1
        assert await sweep_at(22 * DAY) == [f"{rid}:escalation:item.a-1:1@20261218T090000Z"]
        assert await sweep_at(27 * DAY) == [f"{rid}:escalation:item.a-1:2@20261218T090000Z"]

        # The item is done: 30 days later, ask whether the change worked.
        await tell(story.item_updated(at=T0 + 28 * DAY, status=ActionItemStatus.DONE, due_at=T0 + 20 * DAY))
        await gauge_reaches(metrics, "lessons_action_items_overdue", {"priority": "high"}, 0)
        assert await sweep_at(58 * DAY - SECOND) == []
        assert await sweep_at(58 * DAY) == [f"{rid}:effectiveness_check:review:0@20261226T090000Z"]

        await tell(story.status(at=T0 + 60 * DAY, from_status=ReviewStatus.PUBLISHED, to_status=ReviewStatus.CLOSED))
        assert await sweep_at(400 * DAY) == []
        assert await parts(app).timers.timers.count_documents({"review_id": rid, "fired_at": None}) == 0
        after = await scrape(app)

    records = await read_to_end(servers.kafka_bootstrap, settings.events_topic)
    events = [followup_event_adapter.validate_json(record.value) for record in records]
    assert [(event.type, getattr(event, "subject", None), getattr(event, "level", None)) for event in events] == [
        ("ReminderDue", "review", None),
        ("ReminderDue", "review", None),
        ("ReviewOverdue", None, None),
        ("Escalated", "review", 1),
        ("Escalated", "review", 2),
        ("ReminderDue", "action_item", None),
        ("ReminderDue", "action_item", None),
        ("ActionItemOverdue", None, None),
        ("Escalated", "action_item", 1),
        ("Escalated", "action_item", 2),
        ("EffectivenessCheckDue", None, None),
    ]
    assert [event.occurred_at for event in events] == sorted(event.occurred_at for event in events)
    assert all(event.event_id == followup_event_id(event.timer_id) for event in events)
    assert {record.key for record in records} == {rid.encode()}
    assert {record.headers["event-id"] for record in records} == {str(event.event_id) for event in events}
    escalated = [event for event in events if event.type == "Escalated"]
    assert [(event.target, event.owner) for event in escalated] == [
        ("team_lead", "alice"),
        ("management", "alice"),
        ("team_lead", "bob"),
        ("management", "bob"),
    ]

    assert after[("lessons_reviews_completed_total", (("outcome", "late"), ("severity", "high")))] == 1
    assert after[("lessons_escalations_total", (("level", "1"), ("subject", "review")))] == 1
    assert after[("lessons_escalations_total", (("level", "2"), ("subject", "action_item")))] == 1
    assert after[("lessons_followup_events_published_total", (("type", "EffectivenessCheckDue"),))] == 1
    assert after[("lessons_action_items_closed_total", (("priority", "high"), ("status", "done")))] == 1
    assert after[("lessons_followup_last_sweep_timestamp_seconds", ())] == (T0 + 400 * DAY).timestamp()
