"""Review stage throughput against a raw batched baseline doing the same work, in one run on one broker and database.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/review_stage.py [--incidents 2000] [--recurring] [--rounds 1]

N ``IncidentClosed`` records are prepared once on a fresh topic; then each variant consumes all of them with its own
consumer group, database and events topic:

- project: the review service as production runs it (``python -m services.review``, a process with its settings in
  the environment, default batch size and policy).
- raw baseline: aiokafka + pymongo doing the same work with the same guarantees, batched. Per batch: one look-up of
  incidents already reviewed and of the recurrence groups' latest occurrences, then ONE transaction with bulk writes
  (the web list's position counter moved once for the batch, ``insert_many`` of the review documents built by the
  project's own mapping with their list positions, ``bulk_write`` of the links to
  earlier reviews and of the recurrence heads, ``insert_many`` of the outbox entries, one per review changed, as the
  project groups them), then every entry's events published
  with ``acks=all`` (idempotent producer), marked sent in one write, and only then the offsets committed.

Each variant is timed from the events on its Kafka topic (the database is not polled): throughput is
(N - 1) / (last ``ReviewOpened`` timestamp - first), so process start-up is left out of both alike. Incidents do not
recur by default (one service each: every incident looks for an earlier one and finds none); ``--recurring`` gives
them 20 services and one normalised title, as ``benchmarks/pipeline.py`` does, so each links to its predecessor.
``--rounds`` alternates which variant goes first and reports medians: the server's cost per write grows with
what ran before it on the same process (it keeps a list of recent retryable writes that it scans on each new one), so
the variant measured second is slower. Use an even number of rounds, so that each goes first as often; a variant's
database is dropped as soon as it has been checked. Topics and databases are fresh per run. On a shared machine the
figures are noisy: compare the ratio, measured in one run, rather than absolute rates.
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from schemas import IncidentClosed, ReviewEvent, Severity
from services.review.documents import outbox_documents, review_from_document, review_to_document
from services.review.domain.list_window import positions_for_batch
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review, open_review
from services.review.domain.recurrence import (
    RecurrenceGroup,
    link_recurrence,
    occurrence_order,
    recurrence_query,
)
from services.review.policy_file import load_policy
from services.review.repository import ReviewRepository
from services.review.settings import DEFAULT_POLICY_FILE

REPO = Path(__file__).resolve().parent.parent
RESOLVED = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
RECURRING_SERVICES = 20
PARTITIONS = 3  # deploy/local's num.partitions
BATCH = 100  # the service's default REVIEW_BATCH_MAX_RECORDS
WINDOW = timedelta(days=90)  # the service's default REVIEW_RECURRENCE_WINDOW_DAYS
Document = dict[str, Any]


def incident(run: str, number: int, *, recurring: bool) -> IncidentClosed:
    """A closed incident; recurring ones share 20 services and one normalised title (numbers are normalised away)."""
    return IncidentClosed.create(
        source="generic",
        source_incident_id=f"{run}-{number}",
        title=f"Synthetic incident {number}",
        severity=(Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)[number % 4],
        service=f"service-{number % RECURRING_SERVICES}" if recurring else f"service-{run}-{number}",
        team=f"team-{number % 5}",
        started_at=RESOLVED - timedelta(minutes=30),
        resolved_at=RESOLVED,
        labels={"env": "bench", "shard": str(number % 7)},
    )


def groups_of(review: Review) -> tuple[RecurrenceGroup, ...]:
    query = recurrence_query(review, WINDOW)
    return query.groups if query is not None else ()


def rate_from_timestamps(timestamps: list[float]) -> float:
    """Records per second between the first and the last event: (n - 1) intervals over the time they span."""
    if len(timestamps) < 2:
        return 0.0
    span = max(timestamps) - min(timestamps)
    return (len(timestamps) - 1) / span if span > 0 else float("inf")


async def create_topics(bootstrap: str, topics: list[str]) -> None:
    """Created before anything reads them (a consumer of a missing topic may miss its first records), with the
    partitions the local broker gives ``incidents.closed`` and ``reviews.events``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1) for topic in topics]
        )
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


async def prepare(bootstrap: str, topic: str, incidents: list[IncidentClosed]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, closed.model_dump_json().encode(), key=closed.incident_key.encode())
            for closed in incidents
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def opened_timestamps(bootstrap: str, topic: str, count: int, timeout: float) -> list[float]:
    """The Kafka timestamp of each incident's first ``ReviewOpened`` on ``topic``, once all ``count`` are there."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    opened: dict[str, float] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(opened) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                for record in records:
                    if dict(record.headers).get("event-type") == b"ReviewOpened":
                        opened.setdefault(record.key.decode() if record.key else "", record.timestamp / 1000)
    finally:
        await consumer.stop()
    return list(opened.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_project(bootstrap: str, closed_topic: str, run: str, count: int, timeout: float) -> list[float]:
    port = free_port()
    env = {
        **os.environ,
        "MONGODB_DATABASE": f"bench_rs_{run}_project",
        "REVIEW_CLOSED_TOPIC": closed_topic,
        "REVIEW_EVENTS_TOPIC": f"bench.rs.{run}.project.events",
        "REVIEW_GROUP_ID": f"bench-rs-{run}-project",
        # Its own, empty follow-up topic and group: never the shared ones other runs use.
        "REVIEW_FOLLOWUPS_TOPIC": f"bench.rs.{run}.followups",
        "REVIEW_FOLLOWUPS_GROUP_ID": f"bench-rs-{run}-project-followups",
        "REVIEW_HTTP_PORT": str(port),
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "services.review"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return await opened_timestamps(bootstrap, env["REVIEW_EVENTS_TOPIC"], count, timeout)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RawBatch:
    """One batch's work for the baseline: the new reviews, the links to earlier stored ones, the heads, the events."""

    new: dict[str, Review] = field(default_factory=dict)
    earlier_links: list[UpdateOne] = field(default_factory=list)
    heads: dict[str, Review] = field(default_factory=dict)
    events: list[ReviewEvent] = field(default_factory=list)


class RawReview:
    """The baseline: what the review stage must do, batched, written straight with aiokafka and pymongo."""

    def __init__(self, repository: ReviewRepository, policy: ReviewPolicy, events_topic: str) -> None:
        # The project's collections (and, through ensure_indexes, its indexes to maintain), written directly.
        self._reviews, self._outbox, self._heads = repository.reviews, repository.outbox, repository.recurrence_heads
        self._counters = repository.counters
        self._policy = policy
        self._topic = events_topic

    async def plan(self, incidents: list[IncidentClosed], now: datetime) -> RawBatch:
        """Opening and linking for a batch, from two look-ups: reviewed incidents and the groups' latest reviews."""
        keys = [closed.incident_key for closed in incidents]
        known = {doc["incident_key"] async for doc in self._reviews.find({"incident_key": {"$in": keys}})}
        opened = [
            open_review(closed, self._policy.decide(closed), now)
            for closed in incidents
            if closed.incident_key not in known
        ]
        group_keys = {group.key for review, _ in opened for group in groups_of(review)}
        heads = {doc["_id"]: doc["review_id"] async for doc in self._heads.find({"_id": {"$in": sorted(group_keys)}})}
        latest: dict[str, Review] = {}
        if heads:
            stored = {
                doc["_id"]: review_from_document(doc)
                async for doc in self._reviews.find({"_id": {"$in": sorted(set(heads.values()))}})
            }
            latest = {key: stored[review_id] for key, review_id in heads.items() if review_id in stored}
        batch = RawBatch()
        for fresh, event in opened:
            review = fresh
            batch.events.append(event)
            query = recurrence_query(review, WINDOW)
            groups = query.groups if query is not None else ()
            earlier = next(
                (
                    latest[group.key]
                    for group in groups
                    if group.key in latest
                    and query is not None
                    and query.since <= latest[group.key].incident.resolved_at <= query.until
                ),
                None,
            )
            if earlier is not None:
                link = link_recurrence(review, earlier, now)
                review = link.new
                batch.events += [link.recurred, link.earlier_updated, *link.earlier_items_recurred]
                if earlier.id in batch.new:
                    batch.new[earlier.id] = link.earlier
                else:
                    batch.earlier_links.append(
                        UpdateOne(
                            {"_id": earlier.id, "version": earlier.version},
                            {
                                "$addToSet": {"related_reviews": review.id},
                                "$set": {
                                    "version": link.earlier.version,
                                    "updated_at": link.earlier.updated_at,
                                    "updated_by": link.earlier.updated_by,
                                },
                            },
                        )
                    )
                for group in groups:  # later reviews of this batch link to the earlier one as it now stands
                    if group.key in latest and latest[group.key].id == earlier.id:
                        latest[group.key] = link.earlier
            batch.new[review.id] = review
            for group in groups:
                current = latest.get(group.key)
                if current is None or occurrence_order(
                    review.incident.resolved_at, review.created_at, review.id
                ) > occurrence_order(current.incident.resolved_at, current.created_at, current.id):
                    latest[group.key] = review
                    batch.heads[group.key] = review
        return batch

    async def store(self, session: AsyncClientSession, batch: RawBatch, now: datetime) -> list[Document]:
        """Everything of one batch in one transaction, with bulk writes; returns the outbox entries written."""
        entries = outbox_documents(((event, seq, now) for seq, event in enumerate(batch.events)), self._topic)
        if batch.new:
            # The web list's positions and counts, as the project keeps them: one write of the counter per batch.
            counts: dict[str, int] = {"top": len(batch.new)}
            for review in batch.new.values():
                field_name = f"counts.{review.status}.{review.incident.severity}"
                counts[field_name] = counts.get(field_name, 0) + 1
            counter = await self._counters.find_one_and_update(
                {"_id": "list_position"},
                {"$inc": counts, "$setOnInsert": {"bottom": 1}},
                projection={"top": 1},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if counter is None:
                raise RuntimeError("the list position counter was upserted but not returned")
            positions = positions_for_batch(int(counter["top"]), len(batch.new))
            await self._reviews.insert_many(
                [
                    {**review_to_document(review), "list_position": position}
                    for review, position in zip(batch.new.values(), positions, strict=True)
                ],
                session=session,
            )
        if batch.earlier_links:
            await self._reviews.bulk_write(batch.earlier_links, session=session)
        if batch.heads:
            await self._heads.bulk_write(
                [
                    ReplaceOne(
                        {"_id": key}, {"review_id": review.id, "resolved_at": review.incident.resolved_at}, upsert=True
                    )
                    for key, review in batch.heads.items()
                ],
                session=session,
            )
        if entries:
            await self._outbox.insert_many(entries, session=session)
        return entries


async def run_raw(
    bootstrap: str, uri: str, closed_topic: str, run: str, *, count: int, timeout: float, policy: ReviewPolicy
) -> list[float]:
    events_topic = f"bench.rs.{run}.raw.events"
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    database = client[f"bench_rs_{run}_raw"]
    repository = ReviewRepository(database)
    await repository.ensure_indexes()
    raw = RawReview(repository, policy, events_topic)
    consumer = AIOKafkaConsumer(
        closed_topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-rs-{run}-raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    waiting = asyncio.create_task(opened_timestamps(bootstrap, events_topic, count, timeout))
    try:
        while not waiting.done():
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            records = [record for partition in batches.values() for record in partition]
            if not records:
                continue
            incidents = [IncidentClosed.model_validate_json(record.value or b"") for record in records]
            now = datetime.now(UTC).replace(microsecond=0)
            batch = await raw.plan(incidents, now)
            with pymongo.timeout(10):
                async with client.start_session() as session:
                    entries = await session.with_transaction(
                        lambda s, batch=batch, now=now: raw.store(s, batch, now)  # type: ignore[misc]
                    )
            sends = [
                await producer.send(
                    entry["topic"],
                    event["payload"].encode(),
                    key=entry["key"].encode(),
                    headers=[
                        ("content-type", b"application/json"),
                        ("event-id", event["event_id"].encode()),
                        ("event-type", event["event_type"].encode()),
                    ],
                )
                for entry in entries
                for event in entry["events"]
            ]
            await asyncio.gather(*sends)
            await repository.outbox.update_many(
                {"_id": {"$in": [entry["_id"] for entry in entries]}}, {"$set": {"sent_at": datetime.now(UTC)}}
            )
            await consumer.commit()
        return await waiting
    finally:
        waiting.cancel()
        await producer.stop()
        await consumer.stop()
        await client.close()


async def effect(uri: str, database: str) -> str:
    """What a variant stored (read after it was timed): both must have done the same work."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        repository = ReviewRepository(client[database])
        reviews = await repository.reviews.count_documents({})
        linked = await repository.reviews.count_documents({"recurrence": {"$ne": None}})
        entries = await repository.outbox.count_documents({})
        unsent = await repository.outbox.count_documents({"sent_at": None})
    finally:
        await client.close()
    return f"{reviews} reviews ({linked} linked to an earlier one), {entries} outbox entries ({unsent} unsent)"


async def drop(uri: str, names: list[str]) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        for name in names:
            await client.drop_database(name)
    finally:
        await client.close()


async def measure(args: argparse.Namespace, bootstrap: str, uri: str) -> tuple[list[float], list[float]]:
    run = uuid.uuid4().hex[:8]
    closed_topic = f"bench.rs.{run}.closed"
    kind = "recurring" if args.recurring else "not recurring"
    print(
        f"run {run} at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores, {args.incidents} incidents ({kind})"
    )
    topics = [closed_topic] + [
        f"bench.rs.{run}r{round_number}.{name}"
        for round_number in range(args.rounds)
        for name in ("project.events", "raw.events", "followups")
    ]
    await create_topics(bootstrap, topics)
    await prepare(bootstrap, closed_topic, [incident(run, n, recurring=args.recurring) for n in range(args.incidents)])
    policy = load_policy(DEFAULT_POLICY_FILE)
    variants: dict[str, Callable[[str], Any]] = {
        "project": lambda rnd: run_project(bootstrap, closed_topic, rnd, args.incidents, args.timeout),
        "raw": lambda rnd: run_raw(
            bootstrap, uri, closed_topic, rnd, count=args.incidents, timeout=args.timeout, policy=policy
        ),
    }
    rates: dict[str, list[float]] = {"project": [], "raw": []}
    databases: list[str] = []
    try:
        for round_number in range(args.rounds):
            order = ["raw", "project"] if round_number % 2 == 0 else ["project", "raw"]
            for name in order:
                round_run = f"{run}r{round_number}"
                databases.append(f"bench_rs_{round_run}_{name}")
                timestamps = await variants[name](round_run)
                if len(timestamps) < args.incidents:
                    raise RuntimeError(f"{name}: only {len(timestamps)} of {args.incidents} ReviewOpened in time")
                rates[name].append(rate_from_timestamps(timestamps))
                stored = await effect(uri, databases[-1])
                # Each variant starts with the server holding no data of the one before.
                await drop(uri, databases[-1:])
                print(f"round {round_number + 1} {name:<8} {rates[name][-1]:8.1f} records/s; stored {stored}")
    finally:
        await drop(uri, databases)
        await delete_topics(bootstrap, topics)
    return rates["project"], rates["raw"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--recurring", action="store_true", help="incidents recur: 20 services, one title")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternate the variants' order (even: each goes first as often); medians"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a variant may take")
    args = parser.parse_args()
    project, raw = asyncio.run(measure(args, os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URI"]))
    project_rate, raw_rate = statistics.median(project), statistics.median(raw)
    kind = "recurring" if args.recurring else "not recurring"
    print(
        f"summary: review stage ({kind}) project {project_rate:.1f}/s, raw batched baseline {raw_rate:.1f}/s, "
        f"ratio {project_rate / raw_rate:.2f} (goal >= 0.8)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
