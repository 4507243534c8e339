"""Where notify is wired: routing, MongoDB, the two Kafka consumers, the dispatcher, channels, metrics and HTTP."""

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
from services.notify.channels.chat import ChatSender
from services.notify.channels.email import EmailSender, SmtpConfig
from services.notify.dispatcher import Dispatcher, RetryPolicy
from services.notify.domain.routing import Routing
from services.notify.handlers import DeliveryRules, EventConsumer, TopicKind
from services.notify.metrics import NotifyMetrics
from services.notify.repository import MessageRepository, ReviewFactsRepository
from services.notify.routing_file import load_routing
from services.notify.settings import KafkaSettings, MongoSettings, NotifySettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notify:
    """The wired parts, on ``app.state.notify`` for tests that drive the dispatcher with their own clock."""

    broker: KafkaBroker
    routing: Routing
    messages: MessageRepository
    facts: ReviewFactsRepository
    dispatcher: Dispatcher
    metrics: NotifyMetrics


def email_sender(settings: NotifySettings) -> EmailSender | None:
    if not settings.smtp_host:
        return None
    return EmailSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout_seconds=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
        )
    )


def create_app(
    kafka: KafkaSettings | None = None,
    mongo: MongoSettings | None = None,
    settings: NotifySettings | None = None,
    clock: Clock | None = None,
    *,
    run_dispatcher: bool = True,
) -> FastAPI:
    """``run_dispatcher=False`` leaves dispatching to the caller (tests call ``dispatch_due`` with their clock)."""
    kafka = kafka or KafkaSettings()
    mongo = mongo or MongoSettings()
    settings = settings or NotifySettings()
    clock = clock or SystemClock()
    webhooks = settings.webhooks()
    routing = load_routing(settings.routing_file, webhooks)  # a bad file stops start-up here, naming the field
    metrics = NotifyMetrics.create()
    client = mongo_client(mongo)
    database = client[mongo.database]
    facts = ReviewFactsRepository(database)
    messages = MessageRepository(database)
    broker = create_broker(
        kafka, client_id="notify", registry=metrics.registry, graceful_timeout=settings.shutdown_timeout_seconds
    )
    starter = BrokerStarter(broker, kafka)
    topics: dict[TopicKind, str] = {
        "followups": settings.followup_events_topic,
        "reviews": settings.review_events_topic,
    }
    dead_letters = {
        topic: DeadLetters(
            broker, settings.dlq_topic(topic), failed_by="notify", clock=clock.now, metrics=metrics.dead_letters
        )
        for topic in topics.values()
    }
    dispatcher = Dispatcher(
        messages,
        routing,
        email=email_sender(settings),
        chat=ChatSender(
            webhooks,
            {name: destination.kind for name, destination in routing.chat_destinations.items()},
            timeout_seconds=settings.webhook_timeout_seconds,
        ),
        dead_letters=dead_letters,
        metrics=metrics,
        link_base=settings.link_base,
        lease=timedelta(seconds=settings.lease_seconds),
        retry=RetryPolicy(
            max_attempts=settings.delivery_max_attempts,
            backoff=timedelta(seconds=settings.delivery_backoff_seconds),
            max_backoff=timedelta(seconds=settings.delivery_max_backoff_seconds),
        ),
        batch_size=settings.dispatch_batch_size,
    )
    delivery = DeliveryRules(routing, settings.channels, settings.max_event_age)
    for kind, topic in topics.items():
        consumer = EventConsumer(
            kind=kind,
            facts=facts,
            messages=messages,
            dead_letters=dead_letters[topic],
            metrics=metrics,
            delivery=delivery,
            clock=clock,
            on_queued=dispatcher.wake,
            max_attempts=settings.max_attempts,
            retry_backoff_seconds=settings.retry_backoff_seconds,
        )
        # One consumer group per topic: each topic's offsets move on their own.
        group = f"{settings.group_id}.{kind}"
        subscribe_batches(broker, consumer, dead_letters[topic], topic=topic, group_id=group, settings=settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await messages.ensure_indexes()
        await starter.start()
        dispatching = (
            asyncio.create_task(dispatcher.run(clock, settings.dispatch_interval_seconds), name="notify-dispatch")
            if run_dispatcher
            else None
        )
        try:
            yield
        finally:
            dispatcher.stop()
            if dispatching is not None:
                try:
                    await asyncio.wait_for(dispatching, timeout=settings.shutdown_timeout_seconds)
                except TimeoutError:
                    log.warning("dispatch did not finish in time; a leased message is taken over after its lease")
                    with contextlib.suppress(asyncio.CancelledError):
                        await dispatching
            await starter.stop()
            await client.close()

    app = FastAPI(title="incident-lessons notify", lifespan=lifespan)
    app.state.notify = Notify(broker, routing, messages, facts, dispatcher, metrics)
    app.include_router(
        ops_router(metrics.registry, {"kafka": kafka_reachable(broker), "mongodb": mongodb_reachable(client)})
    )
    return app
