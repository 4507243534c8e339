"""Where review is wired: MongoDB, the Kafka broker and consumer, the outbox relay, metrics, the HTTP API and web UI.

Configuration is checked here, before anything connects: a bad policy file or token setting fails start-up with
the file or setting and the field named.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from servicekit.batches import subscribe_batches
from servicekit.broker import create_broker
from servicekit.clock import utc_now
from servicekit.dead_letters import DeadLetters
from servicekit.lifecycle import BrokerStarter, mongo_client
from servicekit.ops import kafka_reachable, mongodb_reachable, ops_router
from services.review.api import install_review_api
from services.review.auth import ApiTokens
from services.review.domain.policy import ReviewPolicy
from services.review.followup_handlers import FollowupEventsConsumer
from services.review.followup_views import FollowupViews
from services.review.handlers import IncidentClosedConsumer
from services.review.list_positions import ListPositioner
from services.review.metrics import ReviewMetrics
from services.review.outbox import OutboxRelay, kafka_publisher
from services.review.policy_file import load_policy
from services.review.repository import ReviewRepository
from services.review.service import ReviewService
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings
from services.review.web import install_web_ui


def subscribe_consumer(
    broker: KafkaBroker,
    service: ReviewService,
    metrics: ReviewMetrics,
    settings: ReviewSettings,
    clock: Callable[[], datetime],
) -> None:
    """The ``incidents.closed`` consumer on ``broker``, with its DLQ (also used by tests on the in-memory broker)."""
    dead_letters = DeadLetters(
        broker, settings.dlq_topic, failed_by="review", clock=clock, metrics=metrics.dead_letters
    )
    consumer = IncidentClosedConsumer(
        service,
        dead_letters,
        metrics,
        max_attempts=settings.max_attempts,
        retry_backoff_seconds=settings.retry_backoff_seconds,
    )
    subscribe_batches(
        broker,
        consumer,
        dead_letters,
        topic=settings.closed_topic,
        group_id=settings.group_id,
        settings=settings,
    )


def subscribe_followups_consumer(
    broker: KafkaBroker,
    service: ReviewService,
    metrics: ReviewMetrics,
    settings: ReviewSettings,
    clock: Callable[[], datetime],
) -> None:
    """The ``followups.events`` consumer on ``broker``, in its own group, with its own DLQ."""
    dead_letters = DeadLetters(
        broker, settings.followups_dlq_topic, failed_by="review", clock=clock, metrics=metrics.dead_letters
    )
    consumer = FollowupEventsConsumer(
        service,
        dead_letters,
        max_attempts=settings.max_attempts,
        retry_backoff_seconds=settings.retry_backoff_seconds,
    )
    subscribe_batches(
        broker,
        consumer,
        dead_letters,
        topic=settings.followups_topic,
        group_id=settings.followups_group_id,
        settings=settings,
    )


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
    client = mongo_client(mongo)
    repository = ReviewRepository(
        client[mongo.database], transaction_time_limit_seconds=settings.transaction_time_limit_seconds
    )
    broker = create_broker(
        kafka, client_id="review", registry=metrics.registry, graceful_timeout=settings.shutdown_timeout_seconds
    )
    starter = BrokerStarter(broker, kafka)
    relay = OutboxRelay(
        repository,
        kafka_publisher(broker),
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
        followups=FollowupViews(client[mongo.database]),
    )
    positioner = ListPositioner(repository.position_unlisted, settings.list_position_poll_seconds)
    subscribe_consumer(broker, service, metrics, settings, clock)
    subscribe_followups_consumer(broker, service, metrics, settings, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await repository.ensure_indexes()
        await starter.start()
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        positions_task = asyncio.create_task(positioner.run(), name="list-positions")
        try:
            yield
        finally:
            # Finish the in-flight batch and commit, then flush what it wrote to the outbox before closing.
            await starter.stop()
            for task in (relay_task, positions_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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

    app.include_router(
        ops_router(metrics.registry, {"kafka": kafka_reachable(broker), "mongodb": mongodb_reachable(client)})
    )
    install_review_api(
        app,
        service,
        tokens,
        anonymous_reads=settings.anonymous_reads,
        max_body_bytes=settings.max_body_bytes,
        public_base_url=settings.public_base_url,
    )
    install_web_ui(app, service, tokens, settings, clock)
    return app
