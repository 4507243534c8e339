"""A follow-up replica killed (SIGKILL) in the middle of a remediation check: the next replica does the check and
publishes its verdict under the same event id, once.

Replica 1 asks a "Prometheus" that accepts the connection and never answers, so it is caught mid-evaluation, and is
killed there. Replica 2, pointed at a real Prometheus with known history, takes the attempt over once replica 1's
lease runs out.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from schemas import RemediationVerified, followup_event_adapter, followup_event_id
from schemas.verification import Verdict
from tests.conftest import REPO, Servers
from tests.integration.followup.prometheus_history import recent_history
from tests.integration.followup.verification_story import LATENCY_FIXED, done_with_plans
from tests.support.kafka import create_topics, produce, read_to_end, read_topic
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer
from tests.unit.followup.builders import ReviewStory

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 3


class Replicas:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, prometheus_url: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        env = {
            **self.env,
            "FOLLOWUP_HTTP_PORT": str(port),
            "FOLLOWUP_REPLICA_ID": name,
            "FOLLOWUP_PROMETHEUS_URL": prometheus_url,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "services.followup"],
            cwd=REPO,
            env=env,
            stdout=(self.logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((self.logs / f"{name}.log").read_text()[-3000:])
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).status_code == httpx.codes.OK:
                    return process, port
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after 60s")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def replicas(servers: Servers, tmp_path: Path) -> Iterator[Replicas]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "MONGODB_DATABASE": f"e2e_verify_{suffix}",
        "FOLLOWUP_REVIEW_EVENTS_TOPIC": f"reviews.events.{suffix}",
        "FOLLOWUP_EVENTS_TOPIC": f"followups.events.{suffix}",
        "FOLLOWUP_GROUP_ID": f"followup-{suffix}",
        "FOLLOWUP_SWEEP_INTERVAL_SECONDS": "0.5",
        "FOLLOWUP_LEASE_SECONDS": str(LEASE_SECONDS),
        "FOLLOWUP_PROMETHEUS_TIMEOUT_SECONDS": "120",
    }
    replicas = Replicas(env, tmp_path)
    try:
        yield replicas
    finally:
        replicas.stop_all()
        asyncio.run(_drop(servers.mongodb_uri, env["MONGODB_DATABASE"]))


async def _drop(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    await client.drop_database(database)
    await client.close()


async def test_a_replica_killed_mid_evaluation_is_replaced_and_the_verdict_published_once(
    servers: Servers, replicas: Replicas, tmp_path: Path
) -> None:
    env = replicas.env
    reviews_topic, events_topic = env["FOLLOWUP_REVIEW_EVENTS_TOPIC"], env["FOLLOWUP_EVENTS_TOPIC"]
    await create_topics(servers.kafka_bootstrap, reviews_topic, f"{reviews_topic}.dlq", events_topic)
    history = recent_history()
    prometheus = PrometheusServer(tmp_path / "prometheus")
    prometheus.backfill(history.series())
    asked = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        asked.set()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    try:
        prometheus.start()
        first, _ = await asyncio.to_thread(replicas.start, "replica-1", f"http://127.0.0.1:{silent_port}")
        story = ReviewStory(f"r-{uuid.uuid4().hex[:8]}")
        for told in done_with_plans(story, history, {"latency": LATENCY_FIXED}):
            await produce(
                servers.kafka_bootstrap, reviews_topic, told.model_dump_json().encode(), key=story.review_id.encode()
            )
        await asyncio.wait_for(asked.wait(), timeout=60)
        first.kill()  # mid-evaluation: the question is asked, no answer came
        await asyncio.to_thread(first.wait)
        nothing_yet = await read_topic(servers.kafka_bootstrap, events_topic, expect=1, timeout=1.0)

        await asyncio.to_thread(replicas.start, "replica-2", prometheus.url)
        await read_topic(servers.kafka_bootstrap, events_topic, expect=1, timeout=60.0)
        records = await read_to_end(servers.kafka_bootstrap, events_topic)
    finally:
        prometheus.stop()
        silent.close()
        for writer in held:
            writer.close()

    assert nothing_yet == []
    (record,) = records
    event = followup_event_adapter.validate_json(record.value)
    assert isinstance(event, RemediationVerified)
    assert (event.review_id, event.action_item_id, event.attempt) == (story.review_id, "latency", 1)
    assert event.verdict is Verdict.EFFECTIVE
    assert event.event_id == followup_event_id(event.timer_id)
    assert record.headers["event-id"] == str(event.event_id)
