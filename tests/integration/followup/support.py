"""Running follow-up in-process against the real servers, with a clock the test moves."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from schemas import Event
from services.followup.app import Followup, create_app
from services.followup.domain.projection import ReviewView
from services.followup.settings import (
    AlertmanagerSettings,
    FollowupSettings,
    KafkaSettings,
    MongoSettings,
    PrometheusSettings,
)
from tests.conftest import Servers
from tests.support.kafka import create_topics, produce
from tests.support.waiting import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class ManualClock:
    """Time stands still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


def settings_for(unique: str, **overrides: object) -> FollowupSettings:
    # One sweep at start, then only when the test calls sweep_once: the test decides when time passes.
    values: dict[str, object] = {
        "review_events_topic": f"reviews.events.{unique}",
        "events_topic": f"followups.events.{unique}",
        "group_id": f"followup-{unique}",
        "sweep_interval_seconds": 3_600.0,
        "replica_id": f"replica-{unique}",
        **overrides,
    }
    return FollowupSettings.model_validate(values)


async def create_followup_topics(servers: Servers, settings: FollowupSettings) -> None:
    await create_topics(
        servers.kafka_bootstrap, settings.review_events_topic, settings.dlq_topic, settings.events_topic
    )


@asynccontextmanager
async def running_followup(
    servers: Servers,
    database: str,
    settings: FollowupSettings,
    clock: ManualClock,
    prometheus: PrometheusSettings | None = None,
    *,
    alertmanager: AlertmanagerSettings | None = None,
) -> AsyncIterator[FastAPI]:
    app = create_app(
        KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
        MongoSettings(uri=servers.mongodb_uri, database=database),
        settings,
        clock,
        prometheus or PrometheusSettings(url=None),
        alertmanager=alertmanager or AlertmanagerSettings(url=None),
    )
    async with app.router.lifespan_context(app):
        yield app


def parts(app: FastAPI) -> Followup:
    followup: Followup = app.state.followup
    return followup


async def produce_events(servers: Servers, topic: str, events: Iterable[Event]) -> None:
    for event in events:
        review_id: str = getattr(event, "review_id")  # noqa: B009 - every review event has one
        await produce(servers.kafka_bootstrap, topic, event.model_dump_json().encode(), key=review_id.encode())


async def tracked_at_version(app: FastAPI, review_id: str, version: int) -> ReviewView:
    """Wait until follow-up's view of the review reached ``version`` (the consumer is asynchronous)."""
    view = await eventually(
        lambda: parts(app).views.get(review_id), lambda v: v is not None and v.version >= version, timeout=60.0
    )
    assert view is not None
    return view


async def scrape(app: FastAPI) -> Samples:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
        text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gauges(samples: Samples, *names: str) -> Samples:
    return {key: value for key, value in samples.items() if key[0] in names}
