"""Review against the real MongoDB-compatible server (and Kafka where events must really leave).

Most API tests need no Kafka: a write ends in MongoDB (review + outbox entry), so they drive the ASGI app without its
lifespan and look at the outbox. Tests about publishing start the lifespan (broker, consumer, relay).
"""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from schemas import IncidentClosed, Severity, review_event_adapter
from services.review.app import create_app
from services.review.documents import outbox_entry_of
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review
from services.review.repository import ReviewRepository
from services.review.service import ReviewService
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings
from tests.conftest import Servers
from tests.support.kafka import create_topics, wait_until_consumed
from tests.support.mongo import scratch_database
from tests.support.waiting import eventually

ADMIN = "admin-token-0123456789abcdef"
EDITOR = "editor-token-0123456789abcdef"
OTHER_EDITOR = "editor2-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
TOKENS = {
    ADMIN: {"name": "carol", "role": "admin"},
    EDITOR: {"name": "erin", "role": "editor"},
    OTHER_EDITOR: {"name": "eve", "role": "editor"},
    VIEWER: {"name": "vic", "role": "viewer"},
}
RESOLVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def incident(incident_id: str, severity: Severity = Severity.CRITICAL, **fields: Any) -> IncidentClosed:
    defaults: dict[str, Any] = {
        "title": "Payments API returning 502s",
        "severity": severity,
        "source_severity": severity.value,
        # One service per incident unless a test says otherwise, so that only tests about recurrence see any.
        "service": f"payments-api-{incident_id.lower()}",
        "team": "payments",
        "started_at": datetime(2026, 11, 27, 9, 12, tzinfo=UTC),
    }
    return IncidentClosed.create(
        source="generic",
        source_incident_id=incident_id,
        resolved_at=fields.pop("resolved_at", RESOLVED),
        **{**defaults, **fields},
    )


class Clock:
    """A clock the test moves; the service reads it for every change."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ReviewApp:
    app: FastAPI
    db: AsyncDatabase[dict[str, Any]]
    http: httpx.AsyncClient
    settings: ReviewSettings
    clock: Clock

    @property
    def service(self) -> ReviewService:
        service: ReviewService = self.app.state.review_service
        return service

    @property
    def repository(self) -> ReviewRepository:
        repository: ReviewRepository = self.app.state.review_repository
        return repository

    async def open(self, closed: IncidentClosed) -> Review:
        opened = await self.service.open_for_incident(closed)
        assert opened.review is not None
        return opened.review

    async def outbox(self, review_id: str | None = None) -> list[dict[str, Any]]:
        """Outbox entries (optionally of one review) in the order the relay sends them."""
        query = {} if review_id is None else {"key": review_id}
        cursor = self.db.review_outbox.find(query).sort("order", 1)
        return await cursor.to_list()

    async def events(self, review_id: str) -> list[Any]:
        """A review's events in the order the relay publishes them."""
        return [
            review_event_adapter.validate_json(event.payload)
            for entry in await self.outbox(review_id)
            for event in outbox_entry_of(entry).events
        ]


async def wait_until_announced(app: ReviewApp, bootstrap: str) -> None:
    """Until the consumer committed every incident on its topic and the relay sent every outbox entry.

    The consumer commits after the review and its outbox entry are written, and the relay marks an entry sent after
    Kafka acknowledged it: from then on the events topic and the DLQ hold everything those incidents caused.
    """
    await wait_until_consumed(bootstrap, app.settings.group_id, app.settings.closed_topic)
    await eventually(app.repository.pending_count, lambda pending: pending == 0)


def review_settings(unique: str, **overrides: Any) -> ReviewSettings:
    defaults: dict[str, Any] = {
        "closed_topic": f"incidents.closed.{unique}",
        "events_topic": f"reviews.events.{unique}",
        "group_id": f"review-{unique}",
        "followups_topic": f"followups.events.{unique}",
        "followups_group_id": f"review-followups-{unique}",
        "retry_backoff_seconds": 0.05,
        "api_tokens": json.dumps(TOKENS),
        "anonymous_reads": True,
        "public_base_url": "http://review",
    }
    return ReviewSettings(**{**defaults, **overrides})


@asynccontextmanager
async def review_app(
    servers: Servers,
    unique: str,
    *,
    with_kafka: bool = False,
    policy: ReviewPolicy | None = None,
    now: datetime = datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
    **overrides: Any,
) -> AsyncIterator[ReviewApp]:
    """The review app on a scratch database; ``with_kafka`` runs its lifespan (consumer and relay) too."""
    settings = review_settings(unique, **overrides)
    clock = Clock(now)
    if with_kafka:
        await create_topics(
            servers.kafka_bootstrap,
            settings.closed_topic,
            settings.events_topic,
            settings.dlq_topic,
            settings.followups_topic,
            settings.followups_dlq_topic,
        )
    async with scratch_database(servers.mongodb_uri, f"review_{unique}") as db:
        app = create_app(
            KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
            MongoSettings(uri=servers.mongodb_uri, database=db.name),
            settings,
            policy=policy,
            clock=clock,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
            if with_kafka:
                async with app.router.lifespan_context(app):
                    yield ReviewApp(app, db, http, settings, clock)
            else:
                await app.state.review_repository.ensure_indexes()
                # What the lifespan's background task does first: the list reads windows of positions from then on.
                await app.state.review_repository.position_unlisted()
                yield ReviewApp(app, db, http, settings, clock)
                await app.state.mongo_client.close()


@pytest.fixture
def make_review_app(servers: Servers, unique: str) -> Callable[..., Any]:
    def make(**options: Any) -> Any:
        return review_app(servers, unique, **options)

    return make
