"""Where follow-up is wired: MongoDB, the Kafka broker and consumer, the timer scheduler, metrics and HTTP."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from servicekit.batches import subscribe_batches
from servicekit.broker import create_broker
from servicekit.clock import Clock, SystemClock
from servicekit.dead_letters import DeadLetters
from servicekit.lifecycle import BrokerStarter, mongo_client
from servicekit.ops import kafka_reachable, mongodb_reachable, ops_router
from services.followup.alertmanager import AlertmanagerClient
from services.followup.handlers import ReviewEventConsumer
from services.followup.metrics import FollowupMetrics
from services.followup.ports import BacklogCounter
from services.followup.prometheus import PrometheusClient
from services.followup.recurrences import RecurrenceRepository
from services.followup.review_views import ReviewViewRepository
from services.followup.scheduler import TimerScheduler, counting_sweeps, kafka_publisher
from services.followup.settings import (
    AlertmanagerSettings,
    FollowupSettings,
    KafkaSettings,
    MongoSettings,
    PrometheusSettings,
)
from services.followup.timers_store import TimerRepository
from services.followup.tracker import ReviewTracker
from services.followup.verification_timers import VerificationTimerRepository
from services.followup.verifier import RemediationVerifier, VerificationTracking, kafka_verdict_publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Followup:
    """The wired parts, on ``app.state.followup`` for tests that drive the scheduler with their own clock."""

    broker: KafkaBroker
    views: ReviewViewRepository
    timers: TimerRepository
    tracker: ReviewTracker
    scheduler: TimerScheduler
    metrics: FollowupMetrics
    verifier: RemediationVerifier
    verification_timers: VerificationTimerRepository


def subscribe_consumer(
    broker: KafkaBroker,
    *,
    tracker: ReviewTracker,
    views: BacklogCounter,
    metrics: FollowupMetrics,
    settings: FollowupSettings,
    clock: Clock,
) -> None:
    """The ``reviews.events`` consumer on ``broker``, with its DLQ (also used by tests on the in-memory broker)."""
    dead_letters = DeadLetters(
        broker, settings.dlq_topic, failed_by="followup", clock=clock.now, metrics=metrics.dead_letters
    )
    consumer = ReviewEventConsumer(
        tracker,
        views,
        dead_letters,
        metrics,
        clock=clock,
        max_attempts=settings.max_attempts,
        retry_backoff_seconds=settings.retry_backoff_seconds,
    )
    subscribe_batches(
        broker,
        consumer,
        dead_letters,
        topic=settings.review_events_topic,
        group_id=settings.group_id,
        settings=settings,
    )


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: FollowupSettings | None = None,
    clock: Clock | None = None,
    prometheus: PrometheusSettings | None = None,
    *,
    alertmanager: AlertmanagerSettings | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or FollowupSettings()
    prometheus = prometheus or PrometheusSettings()
    alertmanager = alertmanager or AlertmanagerSettings()
    clock = clock or SystemClock()
    metrics = FollowupMetrics.create(backlog_recount=timedelta(seconds=settings.backlog_recount_seconds))
    client = mongo_client(mongo)
    database = client[mongo.database]
    views = ReviewViewRepository(database)
    timers = TimerRepository(database)
    verification_timers = VerificationTimerRepository(database)
    recurrences = RecurrenceRepository(database)
    verification_policy = settings.verification_policy()
    tracker = ReviewTracker(
        views,
        timers,
        settings.policy(),
        VerificationTracking(verification_timers, recurrences, verification_policy),
    )
    broker = create_broker(
        kafka, client_id="followup", registry=metrics.registry, graceful_timeout=settings.shutdown_timeout_seconds
    )
    starter = BrokerStarter(broker, kafka)
    subscribe_consumer(broker, tracker=tracker, views=views, metrics=metrics, settings=settings, clock=clock)
    scheduler = TimerScheduler(
        timers,
        kafka_publisher(broker, settings.events_topic),
        replica_id=settings.replica_id,
        lease=timedelta(seconds=settings.lease_seconds),
        batch_size=settings.sweep_batch_size,
        after_sweep=counting_sweeps(metrics, views),
    )
    prometheus_client = PrometheusClient(prometheus)
    alertmanager_client = AlertmanagerClient(alertmanager)
    verifier = RemediationVerifier(
        verification_timers,
        views,
        recurrences,
        prometheus_client,
        kafka_verdict_publisher(broker, settings.events_topic),
        policy=verification_policy,
        replica_id=settings.replica_id,
        lease=timedelta(seconds=settings.lease_seconds),
        batch_size=settings.sweep_batch_size,
        metrics=metrics.verifications,
        alertmanager=alertmanager_client,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await views.ensure_indexes()
        await timers.ensure_indexes()
        await verification_timers.ensure_indexes()
        await recurrences.ensure_indexes()
        # Gauges come from MongoDB, not memory, so they are right straight after a restart.
        await metrics.refresh_backlog(views, clock.now())
        await starter.start()
        sweeping = asyncio.create_task(scheduler.run(clock, settings.sweep_interval_seconds), name="timer-sweeps")
        verifying = asyncio.create_task(verifier.run(clock, settings.sweep_interval_seconds), name="verifications")
        try:
            yield
        finally:
            scheduler.stop()
            verifier.stop()
            for task in (sweeping, verifying):
                try:
                    await asyncio.wait_for(task, timeout=settings.shutdown_timeout_seconds)
                except TimeoutError:
                    log.warning("%s did not finish in time; an unmarked timer is taken over after its lease", task)
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await starter.stop()
            await prometheus_client.close()
            await alertmanager_client.close()
            await client.close()

    app = FastAPI(title="incident-lessons follow-up", lifespan=lifespan)
    app.state.followup = Followup(broker, views, timers, tracker, scheduler, metrics, verifier, verification_timers)
    app.include_router(
        ops_router(metrics.registry, {"kafka": kafka_reachable(broker), "mongodb": mongodb_reachable(client)})
    )
    return app
