"""Where review is wired: MongoDB, the Kafka broker and subscriber, the outbox relay, metrics and the HTTP API.

Configuration is checked here, before anything connects: a bad policy file or token setting fails start-up with
the file or setting and the field named.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from services.review.api import install_review_api
from services.review.auth import ApiTokens
from services.review.domain.policy import ReviewPolicy
from services.review.handlers import register_handlers
from services.review.metrics import ReviewMetrics
from services.review.outbox import OutboxRelay
from services.review.policy_file import load_policy
from services.review.repository import OutboxEntry, ReviewRepository
from services.review.service import ReviewService
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: ReviewSettings | None = None,
    *,
    policy: ReviewPolicy | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or ReviewSettings()
    policy = policy or load_policy(settings.policy_file)
    tokens = ApiTokens.parse(settings.api_tokens.get_secret_value())
    metrics = ReviewMetrics.create()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri, tz_aware=True, connect=False)
    repository = ReviewRepository(client[mongo.database])
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="lessons-review",
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name="review")],
    )

    async def publish(entry: OutboxEntry) -> None:
        await broker.publish(
            entry.payload.encode(),
            topic=entry.topic,
            key=entry.key.encode(),
            headers={"content-type": "application/json", "event-id": entry.event_id, "event-type": entry.event_type},
        )

    relay = OutboxRelay(
        repository,
        publish,
        clock,
        settings.outbox_poll_seconds,
        settings.outbox_batch_size,
        lease_seconds=settings.outbox_lease_seconds,
    )
    service = ReviewService(
        repository,
        policy,
        metrics,
        events_topic=settings.events_topic,
        recurrence_window=timedelta(days=settings.recurrence_window_days),
        clock=clock,
        on_commit=relay.wake if settings.outbox_wake_on_write else lambda: None,
    )
    register_handlers(broker, settings=settings, service=service, metrics=metrics, clock=clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await repository.ensure_indexes()
        await broker.start()
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        try:
            yield
        finally:
            # Finish the in-flight record and commit, then flush what it wrote to the outbox before closing.
            await broker.stop()
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await client.close()

    app = FastAPI(
        title="incident-lessons review",
        summary="Lessons-learned reviews of closed incidents: read them, complete them, move them along.",
        lifespan=lifespan,
    )
    # For tests and tools that drive the service without HTTP.
    app.state.review_service = service
    app.state.review_repository = repository
    app.state.review_relay = relay
    app.state.mongo_client = client

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

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    )
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    install_review_api(
        app,
        service,
        tokens,
        anonymous_reads=settings.anonymous_reads,
        max_body_bytes=settings.max_body_bytes,
        public_base_url=settings.public_base_url,
    )
    return app
