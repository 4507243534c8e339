"""Where ingest is wired: the Kafka broker, its consumer, the metrics registry and the HTTP surface."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from servicekit.batches import subscribe_batches
from servicekit.broker import create_broker as create_kafka_broker
from servicekit.clock import utc_now
from servicekit.dead_letters import DeadLetters
from servicekit.lifecycle import BrokerStarter, mongo_client
from servicekit.ops import kafka_reachable, mongodb_reachable, ops_router
from services.ingest.handlers import Clock, RawIncidentConsumer
from services.ingest.metrics import IngestMetrics
from services.ingest.recent_closures import RecentClosures
from services.ingest.remembering import RecentlyPublished
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import KafkaRawPublisher, WebhookSettings, create_webhook_router


def create_broker(
    kafka: KafkaSettings,
    settings: IngestSettings,
    metrics: IngestMetrics,
    recent: RecentlyPublished,
    clock: Clock = utc_now,
) -> tuple[KafkaBroker, RawIncidentConsumer]:
    """The broker with ingest's consumer subscribed, and the consumer (flushed on shutdown)."""
    broker = create_kafka_broker(
        kafka, client_id="ingest", registry=metrics.registry, graceful_timeout=settings.shutdown_timeout_seconds
    )
    dead_letters = DeadLetters(
        broker, settings.dlq_topic, failed_by="ingest", clock=clock, metrics=metrics.dead_letters
    )
    consumer = RawIncidentConsumer(
        broker,
        dead_letters,
        recent,
        metrics,
        config=settings.normalisation(),
        closed_topic=settings.closed_topic,
        clock=clock,
    )
    subscribe_batches(
        broker,
        consumer,
        dead_letters,
        topic=settings.raw_topic,
        group_id=settings.group_id,
        settings=settings,
    )
    return broker, consumer


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
    client = mongo_client(mongo)
    recent = RecentClosures(client[mongo.database], timedelta(seconds=settings.dedup_window_seconds))
    broker, consumer = create_broker(kafka, settings, metrics, recent)
    starter = BrokerStarter(broker, kafka)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await recent.ensure_indexes()
        await starter.start()
        try:
            yield
        finally:
            # Stops consuming, lets the in-flight batch finish and commits its offsets, then closes the producer;
            # then writes the published keys still being recorded.
            await starter.stop()
            await consumer.flush()
            await client.close()

    app = FastAPI(title="incident-lessons ingest", lifespan=lifespan)
    app.state.broker = broker
    app.state.metrics = metrics
    app.include_router(create_webhook_router(webhooks, KafkaRawPublisher(broker, settings.raw_topic), metrics.registry))
    app.include_router(
        ops_router(metrics.registry, {"kafka": kafka_reachable(broker), "mongodb": mongodb_reachable(client)})
    )
    return app
