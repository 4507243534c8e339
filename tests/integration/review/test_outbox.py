"""No event lost, none applied twice: the outbox and its relay against real Kafka and the MongoDB-compatible server.

The crash tests run the review service as a process and kill it (SIGKILL) between a write and its publication.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from schemas import ReviewOpened, review_event_adapter
from services.review.domain.record import review_id_for
from services.review.outbox import OutboxRelay
from services.review.ports import OutboxEvent
from tests.conftest import REPO, Servers
from tests.integration.review.conftest import EDITOR, TOKENS, Clock, ReviewApp, bearer, incident
from tests.support.kafka import create_topics, produce, read_to_end
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_an_entry_survives_a_failed_publish_and_goes_out_on_the_next_pass(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("OUT-1"))
        assert not (await app.service.open_for_incident(incident("OUT-1"))).review  # a second open is a no-op
        published: list[OutboxEvent] = []
        broker_down = True

        async def publish(event: OutboxEvent) -> None:
            if broker_down:
                raise ConnectionError("Kafka unavailable")
            published.append(event)

        relay = OutboxRelay(app.repository, publish, app.clock, poll_seconds=0.05, batch_size=10)
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert await app.repository.pending_count() == 1
        broker_down = False
        assert await relay.relay_once() == 1
        assert [event.event_id for event in published] == [str((await app.events(review.id))[0].event_id)]
        assert await app.repository.pending_count() == 0


async def test_a_crash_after_publishing_sends_a_duplicate_with_the_same_event_id(
    make_review_app: Any, servers: Servers, unique: str
) -> None:
    """Publish succeeded, marking it sent did not: the next pass sends it again; consumers de-duplicate by id."""
    topic = f"reviews.events.dup.{unique}"
    await create_topics(servers.kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with make_review_app(events_topic=topic) as review_app:
            app: ReviewApp = review_app
            review = await app.open(incident("DUP-1"))
            await app.http.patch(f"/reviews/{review.id}", json={"owner": "erin", "version": 1}, headers=bearer(EDITOR))

            async def publish(event: OutboxEvent) -> None:
                headers = [("event-id", event.event_id.encode())]
                await producer.send_and_wait(
                    event.topic, event.payload.encode(), key=event.key.encode(), headers=headers
                )

            repository = app.repository
            mark_sent = repository.mark_sent
            crashes = ["before marking"]

            async def crash_once(entry_ids: list[str], now: Any) -> None:
                if crashes:
                    raise RuntimeError(f"killed {crashes.pop()}")
                await mark_sent(entry_ids, now)

            repository.mark_sent = crash_once  # type: ignore[method-assign]
            relay = OutboxRelay(repository, publish, app.clock, poll_seconds=0.05, batch_size=10)
            with pytest.raises(RuntimeError, match="killed before marking"):
                await relay.relay_once()
            assert await relay.relay_once() == 2
            assert await repository.pending_count() == 0
    finally:
        await producer.stop()

    records = await read_to_end(servers.kafka_bootstrap, topic)
    ids = [record.headers["event-id"] for record in records]
    assert len(ids) == 4
    assert len(set(ids)) == 2  # each event twice, with the same id
    seen: dict[str, Any] = {}
    for record in records:  # what a consumer does: apply an event id once
        seen.setdefault(record.headers["event-id"], review_event_adapter.validate_json(record.value))
    assert sorted(type(event).__name__ for event in seen.values()) == ["ReviewOpened", "ReviewUpdated"]


async def test_one_relay_at_a_time_until_its_lease_runs_out(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        await app.open(incident("LEASE-1"))
        sent_by: dict[str, list[str]] = {"a": [], "b": []}

        def relay(name: str, clock: Clock) -> OutboxRelay:
            async def publish(event: OutboxEvent) -> None:
                sent_by[name].append(event.event_id)

            return OutboxRelay(app.repository, publish, clock, 1.0, 10, lease_seconds=10, holder=name)

        clock = Clock(app.clock())
        first, second = relay("a", clock), relay("b", clock)
        assert await first.relay_once() == 1
        await app.open(incident("LEASE-2"))
        assert await second.relay_once() == 0  # "a" holds the lease: "b" leaves the entry alone
        assert await app.repository.pending_count() == 1
        clock.now += timedelta(seconds=11)  # "a" stopped renewing (it died)
        assert await second.relay_once() == 1
        assert await first.relay_once() == 0  # and now "b" holds it
        assert len(sent_by["a"]) == len(sent_by["b"]) == 1
        await second._repository.release_relay_lease("b")  # a clean stop hands over at once
        await app.open(incident("LEASE-3"))
        assert await first.relay_once() == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReviewProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.url = f"http://127.0.0.1:{env['REVIEW_HTTP_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.review"],
            cwd=REPO,
            env={**self.env, **overrides},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"review exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("review not ready after 60s")

    def stop(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


@pytest.fixture
def review_process(servers: Servers, unique: str, tmp_path: Path) -> Iterator[ReviewProcess]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "MONGODB_DATABASE": f"crash_{unique}",
        "REVIEW_CLOSED_TOPIC": f"incidents.closed.{unique}",
        "REVIEW_EVENTS_TOPIC": f"reviews.events.{unique}",
        "REVIEW_GROUP_ID": f"review-{unique}",
        "REVIEW_FOLLOWUPS_TOPIC": f"followups.events.{unique}",
        "REVIEW_FOLLOWUPS_GROUP_ID": f"review-followups-{unique}",
        "REVIEW_HTTP_PORT": str(_free_port()),
        "REVIEW_API_TOKENS": json.dumps(TOKENS),
        "REVIEW_ANONYMOUS_READS": "true",
        "REVIEW_OUTBOX_LEASE_SECONDS": "1",
    }
    process = ReviewProcess(env, tmp_path / "review.log")
    try:
        yield process
    finally:
        process.stop(signal.SIGKILL)
        asyncio.run(_drop(servers.mongodb_uri, env["MONGODB_DATABASE"]))


async def _drop(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    await client.drop_database(database)
    await client.close()


async def test_killed_between_write_and_publish_the_events_go_out_after_restart_once_each(
    review_process: ReviewProcess, servers: Servers
) -> None:
    env = review_process.env
    closed_topic, events_topic = env["REVIEW_CLOSED_TOPIC"], env["REVIEW_EVENTS_TOPIC"]
    await create_topics(servers.kafka_bootstrap, closed_topic, events_topic, f"{closed_topic}.dlq")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(servers.mongodb_uri, tz_aware=True)
    outbox = client[env["MONGODB_DATABASE"]].review_outbox
    try:
        # First life: the relay publishes only on its (hour-long) poll, never right after a write.
        review_process.start(REVIEW_OUTBOX_POLL_SECONDS="3600", REVIEW_OUTBOX_WAKE_ON_WRITE="false")
        closed = incident("CRASH-1")
        await produce(servers.kafka_bootstrap, closed_topic, closed.model_dump_json().encode())
        await eventually(lambda: outbox.count_documents({}), lambda n: n == 1)
        review_id = review_id_for(closed.incident_key)
        async with httpx.AsyncClient(base_url=review_process.url) as http:
            edit = {"owner": "erin", "version": 1}
            assert (await http.patch(f"/reviews/{review_id}", json=edit, headers=bearer(EDITOR))).status_code == 200
        written = await outbox.find({}).to_list()
        assert [entry["sent_at"] for entry in written] == [None, None]
        assert await read_to_end(servers.kafka_bootstrap, events_topic) == []

        review_process.stop(signal.SIGKILL)  # killed with both events written, none published

        # Second life: the relay takes over once the dead one's lease has run out, and publishes both.
        review_process.start(REVIEW_OUTBOX_POLL_SECONDS="0.2")
        # The relay marks an entry sent only after Kafka acknowledged it: then the topic holds every copy it sent.
        await eventually(lambda: outbox.count_documents({"sent_at": None}), lambda n: n == 0)
        records = await read_to_end(servers.kafka_bootstrap, events_topic)
    finally:
        review_process.stop(signal.SIGTERM)
        await client.close()

    written_ids = [event["event_id"] for entry in written for event in entry["events"]]
    assert sorted(record.headers["event-id"] for record in records) == sorted(written_ids)
    events = [review_event_adapter.validate_json(record.value) for record in records]
    assert [(type(event).__name__, event.version) for event in events] == [("ReviewOpened", 1), ("ReviewUpdated", 2)]
    assert isinstance(events[0], ReviewOpened)
    assert events[0].review_id == review_id
    assert all(record.key == review_id.encode() for record in records)
