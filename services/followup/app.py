"""Where follow-up is wired: MongoDB, the Kafka broker and subscriber, the timer scheduler, metrics and HTTP."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from services.followup.clock import Clock, SystemClock
from services.followup.handlers import register_handlers
from services.followup.metrics import FollowupMetrics
from services.followup.repository import ClaimedTimer, ReviewViewRepository, TimerRepository
from services.followup.scheduler import Publish, TimerScheduler
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings
from services.followup.tracker import ReviewTracker

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


def timer_publisher(broker: KafkaBroker, topic: str) -> Publish:
    """Publishes a fired timer's stored event, keyed by review so a review's follow-ups stay in order."""

    async def publish(timer: ClaimedTimer) -> None:
        # The broker waits for the acknowledgement (acks=all, idempotent producer) before the timer is marked fired.
        await broker.publish(
            timer.payload.encode(),
            topic=topic,
            key=timer.review_id.encode(),
            headers={"content-type": "application/json", "event-id": timer.event_id, "event-type": timer.event_type},
        )

    return publish


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: FollowupSettings | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or FollowupSettings()
    clock = clock or SystemClock()
    metrics = FollowupMetrics.create()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri, tz_aware=True, connect=False)
    database = client[mongo.database]
    views = ReviewViewRepository(database)
    timers = TimerRepository(database)
    tracker = ReviewTracker(views, timers, settings.policy())
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="lessons-followup",
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name="followup")],
    )
    register_handlers(broker, settings=settings, tracker=tracker, views=views, metrics=metrics, clock=clock)

    async def after_sweep(now: datetime, fired: list[ClaimedTimer], expired: list[ClaimedTimer]) -> None:
        for timer in fired:
            metrics.record_fired(timer)
        for timer in expired:
            metrics.timers_expired.labels(timer.kind).inc()
        metrics.last_sweep.set(now.timestamp())
        # Overdue counts change with time alone, not only with events: recount after every sweep.
        await metrics.refresh_backlog(views, now)

    scheduler = TimerScheduler(
        timers,
        timer_publisher(broker, settings.events_topic),
        replica_id=settings.replica_id,
        lease=timedelta(seconds=settings.lease_seconds),
        batch_size=settings.sweep_batch_size,
        after_sweep=after_sweep,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await views.ensure_indexes()
        await timers.ensure_indexes()
        # Gauges come from MongoDB, not memory, so they are right straight after a restart.
        await metrics.refresh_backlog(views, clock.now())
        await broker.start()
        sweeping = asyncio.create_task(scheduler.run(clock, settings.sweep_interval_seconds), name="timer-sweeps")
        try:
            yield
        finally:
            scheduler.stop()
            try:
                await asyncio.wait_for(sweeping, timeout=settings.shutdown_timeout_seconds)
            except TimeoutError:
                log.warning("timer sweep did not finish in time; an unmarked timer is taken over after its lease")
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeping
            await broker.stop()
            await client.close()

    app = FastAPI(title="incident-lessons follow-up", lifespan=lifespan)
    app.state.followup = Followup(broker, views, timers, tracker, scheduler, metrics)

    _add_http_routes(app, broker, client, metrics)
    return app


def _add_http_routes(
    app: FastAPI, broker: KafkaBroker, client: AsyncMongoClient[dict[str, Any]], metrics: FollowupMetrics
) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, bool]:
        kafka_ok = await broker.ping(timeout=2.0)
        try:
            await client.admin.command("ping")
            mongo_ok = True
        except Exception:
            mongo_ok = False
        if not (kafka_ok and mongo_ok):
            response.status_code = 503
        return {"kafka": kafka_ok, "mongodb": mongo_ok}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
