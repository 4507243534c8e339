"""Fakes that behave like the adapters they stand in for (cosmicpython: fakes over mocks)."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from faststream.kafka import KafkaBroker

from servicekit.dead_letters import DeadLetters
from services.ingest.domain.config import NormalisationConfig
from services.ingest.handlers import RawIncidentConsumer
from services.ingest.metrics import IngestMetrics


class InMemoryRecentClosures:
    """Like ``services.ingest.recent_closures.RecentClosures``, in a dict."""

    def __init__(self, window: timedelta = timedelta(days=1)) -> None:
        self.window = window
        self.published_at: dict[str, datetime] = {}

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]:
        return {key for key in keys if key in self.published_at and self.published_at[key] >= since}

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        for key in keys:
            self.published_at[key] = now


def ingest_consumer(broker: object, recent: InMemoryRecentClosures, now: datetime) -> RawIncidentConsumer:
    """Ingest's consumer on a fake broker (its ``publish`` for dead letters, ``config.producer`` for incidents)."""
    kafka = cast("KafkaBroker", broker)
    metrics = IngestMetrics.create()
    dead_letters = DeadLetters(
        kafka, "incidents.raw.dlq", failed_by="ingest", clock=lambda: now, metrics=metrics.dead_letters
    )
    return RawIncidentConsumer(
        kafka,
        dead_letters,
        recent,
        metrics,
        config=NormalisationConfig(),
        closed_topic="incidents.closed",
        clock=lambda: now,
    )
