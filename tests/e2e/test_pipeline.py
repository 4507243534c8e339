"""The three services as processes over real Kafka and the MongoDB-compatible server.

A generic event produced to ``incidents.raw`` becomes a review in MongoDB, a ``ReviewOpened`` on ``reviews.events``
and a moved metric on follow-up's ``/metrics``; duplicates and garbage do no harm.
"""

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from schemas import ReviewOpened
from tests.conftest import Servers
from tests.e2e.service_processes import (
    SERVICES,
    PipelineTopics,
    drop_database,
    group_ids,
    pipeline_environment,
    start,
    stop,
    wait_ready,
)
from tests.support.kafka import create_topics, produce, read_to_end, read_topic, wait_until_consumed
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@dataclass
class Pipeline:
    servers: Servers
    database: str
    raw_topic: str
    closed_topic: str
    events_topic: str
    groups: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"


@pytest.fixture(scope="module")
def pipeline(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    topics = PipelineTopics.fresh(suffix)
    asyncio.run(create_topics(servers.kafka_bootstrap, *topics.with_dead_letters()))
    logs = tmp_path_factory.mktemp("service-logs")
    ports = {name: free_port() for name in SERVICES}
    database = f"e2e_{suffix}"
    env = {**os.environ, **pipeline_environment(servers, database, topics, suffix, ports)}
    processes = start(env, logs)
    pipeline = Pipeline(
        servers, database, topics.raw, topics.closed, topics.events, group_ids(suffix), ports, processes, logs
    )
    try:
        wait_ready(processes, ports, logs)
        yield pipeline
    finally:
        killed = stop(processes)
        asyncio.run(drop_database(servers.mongodb_uri, database))
        assert killed == [], f"{killed} did not stop within 30s of SIGTERM"


def generic_incident(incident_id: str, severity: str = "high") -> bytes:
    return json.dumps(
        {
            "id": incident_id,
            "title": "Search results empty for 20% of queries",
            "status": "resolved",
            "severity": severity,
            "service": "search",
            "team": "discovery",
            "started_at": "2026-11-28T07:40:00Z",
            "resolved_at": "2026-11-28T08:05:00Z",
        }
    ).encode()


async def reviews_for(pipeline: Pipeline, incident_key: str) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.servers.mongodb_uri, tz_aware=True)
    try:
        return await client[pipeline.database].reviews.find({"incident_key": incident_key}).to_list()
    finally:
        await client.close()


async def metric(pipeline: Pipeline, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples of ``name`` that carry ``labels`` (others too: e.g. every ``status`` of a severity)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(pipeline.url("followup", "/metrics"))).text
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def pending_announcements(pipeline: Pipeline) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.servers.mongodb_uri)
    try:
        return await client[pipeline.database].review_outbox.count_documents({"sent_at": None})
    finally:
        await client.close()


async def wait_until_passed_through(pipeline: Pipeline) -> None:
    """Until every raw record so far went all the way: ingest and review committed them, review's outbox is sent.

    Each step commits or marks sent only after its effect, so from then on a duplicate would be on the topics.
    """
    bootstrap = pipeline.servers.kafka_bootstrap
    await wait_until_consumed(bootstrap, pipeline.groups["ingest"], pipeline.raw_topic)
    await wait_until_consumed(bootstrap, pipeline.groups["review"], pipeline.closed_topic)
    await eventually(lambda: pending_announcements(pipeline), lambda pending: pending == 0)


async def events_for(pipeline: Pipeline, review_id: str) -> list[ReviewOpened]:
    """The ``ReviewOpened`` events of one review (it may have others too, e.g. ``ReviewRecurred``)."""
    records = await read_to_end(pipeline.servers.kafka_bootstrap, pipeline.events_topic)
    return [
        ReviewOpened.model_validate_json(r.value)
        for r in records
        if r.key == review_id.encode() and r.headers.get("event-type") == "ReviewOpened"
    ]


async def test_closed_incident_becomes_review_event_and_metric(pipeline: Pipeline) -> None:
    before = await metric(pipeline, "lessons_reviews_opened_total", {"severity": "high"})
    await produce(
        pipeline.servers.kafka_bootstrap,
        pipeline.raw_topic,
        generic_incident("E2E-1"),
        key=b"E2E-1",
        headers={"source": "generic"},
    )

    reviews = await eventually(lambda: reviews_for(pipeline, "generic:E2E-1"), lambda found: len(found) == 1)
    assert reviews[0]["status"] == "open"
    assert reviews[0]["incident"]["team"] == "discovery"
    opened = await eventually(lambda: events_for(pipeline, reviews[0]["_id"]), lambda found: len(found) == 1)
    assert opened[0].incident_key == "generic:E2E-1"
    await eventually(
        lambda: metric(pipeline, "lessons_reviews_opened_total", {"severity": "high"}), lambda v: v == before + 1
    )
    assert await metric(pipeline, "lessons_reviews_open", {"severity": "high"}) >= 1.0


async def test_the_same_event_twice_gives_one_review(pipeline: Pipeline) -> None:
    for _ in range(2):
        await produce(
            pipeline.servers.kafka_bootstrap,
            pipeline.raw_topic,
            generic_incident("E2E-2", "critical"),
            key=b"E2E-2",
            headers={"source": "generic"},
        )
    reviews = await eventually(lambda: reviews_for(pipeline, "generic:E2E-2"), lambda found: len(found) == 1)
    opened = await eventually(lambda: events_for(pipeline, reviews[0]["_id"]), lambda found: len(found) >= 1)
    # Both copies went all the way through: a second (wrong) review event would be on the topic by now.
    await wait_until_passed_through(pipeline)
    assert len(await events_for(pipeline, reviews[0]["_id"])) == 1
    assert len(await reviews_for(pipeline, "generic:E2E-2")) == 1
    assert opened[0].severity == "critical"


async def test_garbage_lands_in_the_dlq_and_the_next_good_record_is_processed(pipeline: Pipeline) -> None:
    bootstrap = pipeline.servers.kafka_bootstrap
    await produce(
        bootstrap, pipeline.raw_topic, b"<html>502 Bad Gateway</html>", key=b"E2E-3", headers={"source": "generic"}
    )
    await produce(bootstrap, pipeline.raw_topic, generic_incident("E2E-3"), key=b"E2E-3", headers={"source": "generic"})

    await eventually(lambda: reviews_for(pipeline, "generic:E2E-3"), lambda found: len(found) == 1)
    dead = await read_topic(bootstrap, f"{pipeline.raw_topic}.dlq", expect=1)
    assert [r.value for r in dead] == [b"<html>502 Bad Gateway</html>"]
    assert dead[0].headers["dlq-reason"].startswith("body is not JSON")
