"""Verification attempts on the real database and Kafka, with a real Prometheus: retried while it cannot answer, and
fired once in effect even when a replica dies mid-way.

Replicas are ``RemediationVerifier`` instances in-process, each with its own lease-owner id. A replica "killed" is a
sweep task cancelled while it waits (on Prometheus, or after publishing): it neither finishes nor gives its lease
back, as a process that died would not.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ActionItemStatus, RemediationVerified, followup_event_adapter
from schemas.verification import Verdict
from services.followup.domain.answers import Answer
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.verification import VerificationPolicy
from services.followup.prometheus import PrometheusClient
from services.followup.recurrences import RecurrenceRepository
from services.followup.review_views import ReviewViewRepository
from services.followup.settings import PrometheusSettings
from services.followup.timers_store import TimerRepository
from services.followup.tracker import ReviewTracker
from services.followup.verification_timers import VerificationTimerRepository
from services.followup.verifier import (
    PublishVerdict,
    RemediationVerifier,
    VerificationTracking,
    kafka_verdict_publisher,
)
from tests.conftest import Servers
from tests.integration.followup.prometheus_history import History
from tests.integration.followup.verification_story import LATENCY_FIXED, done_with_plans
from tests.support.kafka import Record, create_topics, read_to_end, read_topic
from tests.support.mongo import scratch_database
from tests.support.prometheus import PrometheusServer
from tests.support.waiting import eventually
from tests.unit.followup.builders import ReviewStory

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=60)
POLICY = VerificationPolicy(retry_first=timedelta(minutes=5), retry_max=timedelta(minutes=30))


@dataclass
class Verification:
    """One review with one item done (the latency fix), tracked; replicas to verify it share ``timers``."""

    database: AsyncDatabase[dict[str, Any]]
    bootstrap: str
    broker: KafkaBroker
    topic: str
    views: ReviewViewRepository
    timers: VerificationTimerRepository
    recurrences: RecurrenceRepository
    due: datetime

    def replica(
        self, name: str, prometheus: PrometheusClient, publish: PublishVerdict | None = None
    ) -> RemediationVerifier:
        return RemediationVerifier(
            self.timers,
            self.views,
            self.recurrences,
            prometheus,
            publish or kafka_verdict_publisher(self.broker, self.topic),
            policy=POLICY,
            replica_id=name,
            lease=LEASE,
            batch_size=100,
        )

    async def published(self, expect: int) -> list[Record]:
        """Everything published, once ``expect`` records are there: the sweeps that publish have returned."""
        await read_topic(self.bootstrap, self.topic, expect=expect)
        return await read_to_end(self.bootstrap, self.topic)


@pytest.fixture
async def broker(servers: Servers) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(servers.kafka_bootstrap, acks="all", enable_idempotence=True)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def verification(
    servers: Servers, unique: str, broker: KafkaBroker, history: History
) -> AsyncIterator[Verification]:
    topic = f"followups.events.{unique}"
    await create_topics(servers.kafka_bootstrap, topic)
    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        views, timers, recurrences = ReviewViewRepository(db), VerificationTimerRepository(db), RecurrenceRepository(db)
        await timers.ensure_indexes()
        tracker = ReviewTracker(
            views, TimerRepository(db), FollowupPolicy(), VerificationTracking(timers, recurrences, POLICY)
        )
        for event in done_with_plans(ReviewStory(f"r-{unique}"), history, {"latency": LATENCY_FIXED}):
            await tracker.track(event)
        yield Verification(
            db,
            servers.kafka_bootstrap,
            broker,
            topic,
            views,
            timers,
            recurrences,
            history.at(120) + POLICY.evaluation_delay,
        )


def verdicts(records: list[Record]) -> list[RemediationVerified]:
    events = [followup_event_adapter.validate_json(record.value) for record in records]
    assert all(isinstance(event, RemediationVerified) for event in events)
    return events  # type: ignore[return-value]


async def test_inconclusive_while_prometheus_is_stopped_then_answered_on_a_retry(
    verification: Verification, tmp_path: Path, history: History
) -> None:
    server = PrometheusServer(tmp_path / "data")
    server.backfill(history.series())
    client = PrometheusClient(PrometheusSettings(url=server.url, timeout_seconds=2))
    replica = verification.replica("replica-1", client)
    try:
        stopped = await replica.sweep_once(verification.due)
        not_yet = await replica.sweep_once(verification.due + timedelta(minutes=4))
        server.start()
        retried = await replica.sweep_once(verification.due + timedelta(minutes=5))
        done = await replica.sweep_once(verification.due + timedelta(days=2))
    finally:
        server.stop()
        await client.close()

    first, second = verdicts(await verification.published(expect=2))
    assert (len(stopped), not_yet, len(retried), done) == (1, [], 1, [])
    assert (first.attempt, first.verdict) == (1, Verdict.INCONCLUSIVE)
    assert first.evidence.detail.startswith("unreachable: ConnectError")
    assert first.evidence.observed is None
    assert (second.attempt, second.verdict, second.evidence.observed) == (2, Verdict.EFFECTIVE, 0.3)
    assert second.event_id != first.event_id
    assert second.occurred_at == verification.due + timedelta(minutes=5)


class HangingPrometheus(PrometheusClient):
    """Never answers: the replica asking it is stuck mid-evaluation until it is killed."""

    def __init__(self) -> None:
        super().__init__(PrometheusSettings(url="http://127.0.0.1:9"))
        self.asked = asyncio.Event()

    async def instant(self, expression: str, at: datetime) -> Answer:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover


async def kill_when(sweep: Awaitable[object], reached: Callable[[], Awaitable[object]]) -> None:
    task = asyncio.ensure_future(sweep)
    try:
        await reached()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_replica_killed_mid_evaluation_leaves_the_attempt_to_the_next_one(
    verification: Verification, prometheus: PrometheusServer
) -> None:
    hanging = HangingPrometheus()
    client = PrometheusClient(PrometheusSettings(url=prometheus.url))
    dying, taking_over = verification.replica("replica-1", hanging), verification.replica("replica-2", client)
    try:
        await kill_when(dying.sweep_once(verification.due), hanging.asked.wait)
        within_lease = await taking_over.sweep_once(verification.due + LEASE - timedelta(seconds=1))
        after_lease = await taking_over.sweep_once(verification.due + LEASE)
    finally:
        await hanging.close()
        await client.close()

    (event,) = verdicts(await verification.published(expect=1))
    assert within_lease == []
    assert [fired.event for fired in after_lease] == [event]
    assert (event.attempt, event.verdict) == (1, Verdict.EFFECTIVE)
    assert event.evidence.judged_at == verification.due + LEASE


async def test_a_replica_killed_after_publishing_is_repeated_with_the_same_event(
    verification: Verification, prometheus: PrometheusServer
) -> None:
    client = PrometheusClient(PrometheusSettings(url=prometheus.url))
    publish = kafka_verdict_publisher(verification.broker, verification.topic)
    sent = asyncio.Event()

    async def publish_then_die(event: RemediationVerified, payload: str) -> None:
        await publish(event, payload)
        sent.set()
        await asyncio.Event().wait()  # killed here: published, not marked fired

    dying = verification.replica("replica-1", client, publish_then_die)
    taking_over = verification.replica("replica-2", client)
    try:
        await kill_when(dying.sweep_once(verification.due), sent.wait)
        within_lease = await taking_over.sweep_once(verification.due + timedelta(seconds=30))
        after_lease = await taking_over.sweep_once(verification.due + LEASE + timedelta(minutes=10))
        later = await taking_over.sweep_once(verification.due + timedelta(days=2))
    finally:
        await client.close()

    first, again = await verification.published(expect=2)
    assert (within_lease, len(after_lease), later) == ([], 1, [])
    assert again.value == first.value  # the same bytes: the verdict stored on the timer, not evaluated again
    assert again.headers["event-id"] == first.headers["event-id"]
    stored = await eventually(
        lambda: verification.timers.for_reviews([verdicts([first])[0].review_id]), lambda docs: len(docs) == 1
    )
    assert stored[0]["fired_by"] == "replica-2"
    assert stored[0]["verdict"] == "effective"


async def test_reopening_the_item_cancels_its_pending_attempts_retries_included(
    verification: Verification, history: History, unique: str
) -> None:
    review_id = f"r-{unique}"
    client = PrometheusClient(PrometheusSettings(url=None))  # inconclusive: a retry gets added
    try:
        (inconclusive,) = await verification.replica("replica-1", client).sweep_once(verification.due)
    finally:
        await client.close()
    pending = [doc["_id"] for doc in await verification.timers.for_reviews([review_id]) if doc["fired_at"] is None]
    story = ReviewStory(review_id)
    story.version = (await verification.views.get(review_id)).version  # type: ignore[union-attr]
    tracker = ReviewTracker(
        verification.views,
        TimerRepository(verification.database),
        FollowupPolicy(),
        VerificationTracking(verification.timers, verification.recurrences, POLICY),
    )

    await tracker.track(
        story.item_updated(at=history.at(130), item_id="latency", status=ActionItemStatus.IN_PROGRESS).model_copy(
            update={"verification": LATENCY_FIXED}
        )
    )

    remaining = await verification.timers.for_reviews([review_id])
    assert inconclusive.event.verdict is Verdict.INCONCLUSIVE
    assert pending == [inconclusive.timer.timer_id.replace("#1", "#2")]
    assert [(doc["_id"], doc["fired_at"] is not None) for doc in remaining] == [(inconclusive.timer.timer_id, True)]
