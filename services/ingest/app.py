"""Where ingest is wired: the Kafka broker, its subscriber, the metrics registry and the HTTP surface."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.ingest.handlers import register_handlers
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings, KafkaSettings


def create_broker(kafka: KafkaSettings, settings: IngestSettings, metrics: IngestMetrics) -> KafkaBroker:
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id="lessons-ingest",
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name="ingest")],
    )
    register_handlers(broker, settings, metrics)
    return broker


def create_app(kafka: KafkaSettings | None = None, settings: IngestSettings | None = None) -> FastAPI:
    kafka = kafka or KafkaSettings()
    settings = settings or IngestSettings()
    metrics = IngestMetrics.create()
    broker = create_broker(kafka, settings, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            # Stops consuming, lets the in-flight record finish and commits its offset, then closes the producer.
            await broker.stop()

    app = FastAPI(title="incident-lessons ingest", lifespan=lifespan)
    app.state.broker = broker
    app.state.metrics = metrics

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, bool]:
        kafka_ok = await broker.ping(timeout=2.0)
        if not kafka_ok:
            response.status_code = 503
        return {"kafka": kafka_ok}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
