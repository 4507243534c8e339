"""Where ingest is wired: the Kafka broker, its subscriber, the metrics registry and the HTTP surface."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from services.ingest.handlers import register_handlers
from services.ingest.metrics import IngestMetrics
from services.ingest.recent_closures import RecentClosures
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import KafkaRawPublisher, WebhookSettings, create_webhook_router


def create_broker(
    kafka: KafkaSettings, settings: IngestSettings, metrics: IngestMetrics, recent: RecentClosures
) -> KafkaBroker:
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="lessons-ingest",
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name="ingest")],
    )
    register_handlers(broker, settings=settings, metrics=metrics, recent=recent)
    return broker


def create_app(
    kafka: KafkaSettings | None = None,
    settings: IngestSettings | None = None,
    mongo: MongoSettings | None = None,
    webhooks: WebhookSettings | None = None,
) -> FastAPI:
    kafka = kafka or KafkaSettings()
    settings = settings or IngestSettings()
    mongo = mongo or MongoSettings()
    webhooks = webhooks or WebhookSettings()
    metrics = IngestMetrics.create()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.uri, tz_aware=True, connect=False)
    recent = RecentClosures(client[mongo.database], timedelta(seconds=settings.dedup_window_seconds))
    broker = create_broker(kafka, settings, metrics, recent)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await recent.ensure_indexes()
        await broker.start()
        try:
            yield
        finally:
            # Stops consuming, lets the in-flight record finish and commits its offset, then closes the producer.
            await broker.stop()
            await client.close()

    app = FastAPI(title="incident-lessons ingest", lifespan=lifespan)
    app.state.broker = broker
    app.state.metrics = metrics
    app.include_router(create_webhook_router(webhooks, KafkaRawPublisher(broker, settings.raw_topic), metrics.registry))

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
