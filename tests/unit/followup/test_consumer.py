"""Follow-up's ``reviews.events`` consumer, wired as in production with in-memory repositories, in memory and on the
real Kafka (the ``kafka`` fixture): events tracked once and in order, stale and duplicate ones counted, unknown types
skipped, garbage to the DLQ, the backlog gauges moved. MongoDB's side is in ``tests/integration/followup/``."""

from datetime import datetime
from uuid import uuid4

from schemas import ActionItemPriority, Event, ReviewStatus, Severity
from servicekit.broker import create_broker
from services.followup.app import subscribe_consumer
from services.followup.domain.policy import FollowupPolicy
from services.followup.metrics import FollowupMetrics
from services.followup.settings import FollowupSettings
from services.followup.tracker import ReviewTracker
from tests.support.brokers import ConsumerKafka, Produced
from tests.unit.followup.builders import DAY, T0, ReviewStory
from tests.unit.followup.fakes import InMemoryReviewViews, InMemoryTimers


class StoppedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def encoded(event: Event) -> bytes:
    return event.model_dump_json().encode()


async def test_events_are_tracked_once_garbage_goes_to_the_dlq_and_the_gauges_follow(
    kafka: ConsumerKafka, unique: str
) -> None:
    settings = FollowupSettings(
        review_events_topic=f"reviews.events.{unique}", group_id=f"followup-{unique}", retry_backoff_seconds=0.0
    )
    metrics = FollowupMetrics.create()
    views, timers = InMemoryReviewViews(), InMemoryTimers()
    # The consumer's types are the MongoDB repositories; the fakes behave like them for what it calls.
    tracker = ReviewTracker(views, timers, FollowupPolicy())
    broker = create_broker(kafka.settings(), client_id="followup", registry=metrics.registry, graceful_timeout=5)
    clock = StoppedClock(T0 + 6 * DAY)  # the critical review and its item a-1 are overdue; the rest is not
    subscribe_consumer(
        broker,
        tracker=tracker,
        views=views,
        metrics=metrics,
        settings=settings,
        clock=clock,
    )

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
    garbage = [b'{"type": "SomethingNew", "x": 1}', b"[]", b'{"type": "ReviewOpened", "version": 1}']
    # One key: one partition, so the real Kafka keeps this order too.
    records: list[Produced] = [(value, b"one-partition", {}) for value in [*map(encoded, events), *garbage]]
    outputs = [settings.dlq_topic]
    async with kafka.running(
        broker, consumes=settings.review_events_topic, group=settings.group_id, outputs=outputs
    ) as running:
        await running.produce(settings.review_events_topic, records)
        await running.handled()
        dead = await running.records(settings.dlq_topic)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("lessons_review_events_total", type="ReviewOpened", outcome="tracked") == 4
    assert sample("lessons_review_events_total", type="ReviewStatusChanged", outcome="tracked") == 2
    assert sample("lessons_review_events_total", type="ReviewOpened", outcome="duplicate") == 1
    assert sample("lessons_review_events_total", type="ReviewOpened", outcome="stale") == 1
    assert sample("lessons_review_events_total", type="other", outcome="ignored") == 1
    assert sample("lessons_reviews_opened_total", severity="critical") == 1
    assert sample("lessons_reviews_opened_total", severity="low") == 0  # not_required: no review to write
    assert sample("lessons_reviews_open", status="open", severity="critical") == 1
    assert sample("lessons_reviews_open", status="in_review", severity="high") == 1
    assert sample("lessons_reviews_open", status="open", severity="medium") == 0
    assert sample("lessons_reviews_overdue", severity="critical") == 1
    assert sample("lessons_reviews_overdue", severity="high") == 0
    assert sample("lessons_action_items_open", priority="critical") == 1
    assert sample("lessons_action_items_open", priority="low") == 1
    assert sample("lessons_action_items_overdue", priority="critical") == 1
    assert sample("lessons_dlq_messages_total", topic=settings.dlq_topic) == 2

    assert [record.value for record in dead] == [b"[]", b'{"type": "ReviewOpened", "version": 1}']
    assert dead[0].headers["dlq-reason"].startswith("not a valid review event")
    assert dead[0].headers["dlq-original-topic"] == settings.review_events_topic
    assert sorted(views.views) == sorted(story.review_id for story in (critical, high, low, closed))
    assert views.views[critical.review_id].version == 3
    assert timers.of_review(critical.review_id)  # its deadlines and the items'
    assert timers.of_review(closed.review_id) == []  # closed: nothing left to remind anyone of
