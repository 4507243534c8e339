"""The receiver on a bare FastAPI app, a fake publisher that behaves like Kafka (or like Kafka being down), and a
body that counts how much of it the receiver read."""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.ingest.webhooks import WebhookSettings, create_webhook_router
from services.ingest.webhooks.publisher import RecordTooLargeError

NOW = datetime(2026, 11, 28, 9, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Published:
    body: bytes
    headers: dict[str, str]
    key: bytes | None


@dataclass
class FakePublisher:
    """Records what it was given, as Kafka would once it acknowledged; or fails, or never answers, like Kafka down; or
    refuses the record for its size, like Kafka does above its record limit."""

    behaviour: Literal["ack", "fail", "hang", "too-large"] = "ack"
    records: list[Published] = field(default_factory=list)

    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "fail":
            raise ConnectionError("KafkaConnectionError: unable to bootstrap")
        if self.behaviour == "too-large":
            raise RecordTooLargeError("MessageSizeTooLargeError: the message is 1048700 bytes when serialized")
        self.records.append(Published(body, dict(headers), key))


@dataclass
class Receiver:
    settings: WebhookSettings
    publisher: FakePublisher
    registry: CollectorRegistry
    app: FastAPI

    async def post(
        self,
        path: str,
        content: bytes | AsyncIterable[bytes] = b"{}",
        headers: Mapping[str, str | bytes] | None = None,
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in (headers or {}).items()]
            return await client.post(path, content=content, headers=raw)

    def count(self, source: str, status: int) -> float:
        value = self.registry.get_sample_value(
            "lessons_webhook_requests_total", {"source": source, "status": str(status)}
        )
        return value or 0.0


def receiver(
    settings: WebhookSettings,
    publisher: FakePublisher | None = None,
    clock: Callable[[], datetime] = lambda: NOW,
) -> Receiver:
    publisher = publisher or FakePublisher()
    registry = CollectorRegistry()
    app = FastAPI()
    app.include_router(create_webhook_router(settings, publisher, registry, clock=clock))
    return Receiver(settings, publisher, registry, app)


@dataclass
class CountedBody:
    """A request body sent in chunks (no Content-Length): how many chunks the receiver pulled is kept."""

    chunk: bytes
    chunks: int
    pulled: int = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk
