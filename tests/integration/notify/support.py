"""Running notify in-process against real Kafka, the real database server, SMTP and webhook receivers."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import Event
from services.notify.app import Notify, create_app
from services.notify.settings import KafkaSettings, MongoSettings, NotifySettings
from tests.conftest import Servers
from tests.support.kafka import create_topics, produce
from tests.support.waiting import eventually
from tests.unit.notify.builders import ROUTING_YAML


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


def write_routing(folder: Path, text: str = ROUTING_YAML) -> Path:
    path = folder / "routing.yaml"
    path.write_text(text)
    return path


def settings_for(
    unique: str, routing_file: Path, smtp_port: int, hook_base: str, **overrides: object
) -> NotifySettings:
    values: dict[str, object] = {
        "followup_events_topic": f"followups.events.{unique}",
        "review_events_topic": f"reviews.events.{unique}",
        "group_id": f"notify-{unique}",
        "routing_file": routing_file,
        "review_ui_base_url": "https://lessons.example.org",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "smtp_from": "lessons@example.org",
        "smtp_timeout_seconds": 3.0,
        "webhook_urls": f'{{"payments-chat": "{hook_base}/payments", "leaders": "{hook_base}/leaders"}}',
        "allow_http_webhooks": True,
        "delivery_max_attempts": 3,
        "delivery_backoff_seconds": 60.0,
        "dispatch_interval_seconds": 3_600.0,
        "replica_id": f"replica-{unique}",
        **overrides,
    }
    return NotifySettings.model_validate(values)


async def create_notify_topics(servers: Servers, settings: NotifySettings) -> None:
    topics = (settings.followup_events_topic, settings.review_events_topic)
    await create_topics(servers.kafka_bootstrap, *topics, *(settings.dlq_topic(topic) for topic in topics))


@asynccontextmanager
async def running_notify(
    servers: Servers, database: str, settings: NotifySettings, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    """Notify consuming, with dispatching left to the test (``parts(app).dispatcher.dispatch_due``)."""
    app = create_app(
        KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
        MongoSettings(uri=servers.mongodb_uri, database=database),
        settings,
        clock,
        run_dispatcher=False,
    )
    async with app.router.lifespan_context(app):
        yield app


def parts(app: FastAPI) -> Notify:
    notify: Notify = app.state.notify
    return notify


async def produce_events(servers: Servers, topic: str, events: Iterable[Event]) -> None:
    for event in events:
        review_id: str = getattr(event, "review_id")  # noqa: B009 - every event here has one
        await produce(servers.kafka_bootstrap, topic, event.model_dump_json().encode(), key=review_id.encode())


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def metric_reaches(app: FastAPI, name: str, labels: dict[str, str], value: float) -> None:
    registry = parts(app).metrics.registry

    async def read() -> float:
        return sample(registry, name, labels)

    await eventually(read, lambda seen: seen >= value, timeout=60.0, every=0.1)


async def queued(app: FastAPI, count: int, **query: object) -> None:
    """Wait until ``count`` messages matching ``query`` are in notify_messages (the consumer is asynchronous)."""
    messages = parts(app).messages
    await eventually(lambda: messages.count(dict(query)), lambda seen: seen >= count, timeout=60.0, every=0.1)
