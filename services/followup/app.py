"""Where follow-up is wired: MongoDB, the Kafka broker and subscriber, metrics and the HTTP surface."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from services.followup.handlers import refresh_open_gauge, register_handlers
from services.followup.metrics import FollowupMetrics
from services.followup.repository import TrackedReviewRepository
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: FollowupSettings | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or FollowupSettings()
    metrics = FollowupMetrics.create()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri, tz_aware=True, connect=False)
    repository = TrackedReviewRepository(client[mongo.database])
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="lessons-followup",
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name="followup")],
    )
    register_handlers(broker, settings=settings, repository=repository, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await repository.ensure_indexes()
        # Gauges come from MongoDB, not memory, so they are right straight after a restart.
        await refresh_open_gauge(repository, metrics)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await client.close()

    app = FastAPI(title="incident-lessons follow-up", lifespan=lifespan)

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

    return app
