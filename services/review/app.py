"""Where review is wired: MongoDB, the Kafka broker and subscriber, the outbox relay, metrics and the HTTP API."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from services.review.domain.policy import ReviewPolicy
from services.review.handlers import register_handlers
from services.review.metrics import ReviewMetrics
from services.review.outbox import OutboxRelay
from services.review.repository import OutboxEntry, ReviewRepository
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: ReviewSettings | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or ReviewSettings()
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

    relay = OutboxRelay(repository, publish, utc_now, settings.outbox_poll_seconds, settings.outbox_batch_size)
    register_handlers(
        broker, settings=settings, repository=repository, relay=relay, metrics=metrics, policy=ReviewPolicy()
    )

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

    app = FastAPI(title="incident-lessons review", lifespan=lifespan)

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

    @app.get("/reviews")
    async def list_reviews(limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
        return await repository.latest(limit)

    @app.get("/reviews/{review_id}")
    async def get_review(review_id: str) -> dict[str, Any]:
        review = await repository.get(review_id)
        if review is None:
            raise HTTPException(status_code=404, detail=f"no review {review_id}")
        return review

    return app
