"""Follow-up's stage: its ``reviews.events`` consumer against raw PyMongo doing the same writes, in one run.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/followup_stage.py [--reviews 2000] [--batch 100] [--rounds 3]

The workload is what an alert storm brings follow-up: one ``ReviewOpened`` per incident, in batches of ``--batch``
(``FOLLOWUP_BATCH_MAX_RECORDS``'s default). The project: ``ReviewEventConsumer.process`` on those records, wired as
the service wires it (views, timers, verification and recurrences, backlog gauges), without Kafka. The baseline:
raw PyMongo writing the very documents the project stores (each view, and the five timers an open review gets), in
one unordered ``bulk_write`` of view upserts and one of timer inserts per batch, its documents built before timing.
Each round runs both on fresh databases (baseline first, then the project, alternating); medians are reported. The
test server keeps a list of recent retryable writes that it scans on each new one, so its cost depends on what ran
before: restart it before a run for comparable figures. Drops its databases at the end; prints one line per round
and a summary line with the ratio (project / baseline throughput).
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient, InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ReviewOpened, ReviewStatus, Severity
from servicekit.dead_letters import DeadLetterMetrics, DeadLetters
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import apply_event
from services.followup.domain.timers import plan_timers
from services.followup.domain.verification import VerificationPolicy
from services.followup.handlers import ReviewEventConsumer
from services.followup.metrics import FollowupMetrics
from services.followup.recurrences import RecurrenceRepository
from services.followup.review_views import ReviewViewRepository, view_to_document
from services.followup.timers_store import TimerRepository, timer_fields
from services.followup.tracker import ReviewTracker
from services.followup.verification_timers import VerificationTimerRepository
from services.followup.verifier import VerificationTracking

Document = dict[str, Any]
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return START


class NoDeadLetters(DeadLetters):
    """The workload has no bad record; reaching the DLQ would be a failure of the benchmark."""

    def __init__(self) -> None:
        super().__init__(
            KafkaBroker(), "dlq", failed_by="bench", clock=lambda: START, metrics=DeadLetterMetrics(CollectorRegistry())
        )

    async def send(self, record: ConsumerRecord[Any, Any], reason: str, attempts: int = 1) -> None:
        raise RuntimeError(f"dead-lettered: {reason}")


def opened(number: int, run: str) -> ReviewOpened:
    at = START + timedelta(seconds=number)
    return ReviewOpened(
        event_id=uuid.uuid4(),
        occurred_at=at,
        review_id=f"{run}-{number}",
        version=1,
        incident_key=f"generic:{run}-{number}",
        source="generic",
        title=f"Synthetic incident {number}",
        severity=(Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)[number % 4],
        team="payments",
        owner="alice",
        status=ReviewStatus.OPEN,
        due_at=at + timedelta(days=7),
        incident_started_at=at - timedelta(hours=1),
        incident_resolved_at=at,
    )


def record(event: ReviewOpened, offset: int) -> ConsumerRecord[bytes, bytes]:
    value, key = event.model_dump_json().encode(), event.review_id.encode()
    return ConsumerRecord(
        topic="reviews.events",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=(),
    )


async def project(database: AsyncDatabase[Document], batches: list[list[ReviewOpened]]) -> float:
    """Seconds for the consumer to process every batch."""
    views, timers = ReviewViewRepository(database), TimerRepository(database)
    verification_timers, recurrences = VerificationTimerRepository(database), RecurrenceRepository(database)
    for repository in (views, timers, verification_timers, recurrences):
        await repository.ensure_indexes()
    tracking = VerificationTracking(verification_timers, recurrences, VerificationPolicy())
    tracker = ReviewTracker(views, timers, FollowupPolicy(), tracking)
    metrics = FollowupMetrics.create()
    consumer = ReviewEventConsumer(
        tracker, views, NoDeadLetters(), metrics, clock=FixedClock(), max_attempts=3, retry_backoff_seconds=0.0
    )
    await metrics.refresh_backlog(views, START)
    records = [[record(event, offset) for offset, event in enumerate(batch)] for batch in batches]
    started = time.perf_counter()
    for batch in records:
        await consumer.process(batch)
    return time.perf_counter() - started


async def baseline(database: AsyncDatabase[Document], batches: list[list[ReviewOpened]]) -> float:
    """Seconds for raw PyMongo to write the same views and timers, one bulk write of each per batch."""
    await TimerRepository(database).ensure_indexes()  # the same indexes the timers need to be claimed
    await ReviewViewRepository(database).ensure_indexes()
    policy = FollowupPolicy()
    prepared = []
    for batch in batches:
        view_writes, timer_writes = [], []
        for event in batch:
            view = apply_event(None, event).view
            assert view is not None
            document = view_to_document(view)
            view_writes.append(ReplaceOne({"_id": view.review_id}, document, upsert=True))
            timer_writes += [
                InsertOne({"_id": timer.timer_id, **timer_fields(timer), "fired_at": None, "attempts": 0})
                for timer in plan_timers(view, policy)
            ]
        prepared.append((view_writes, timer_writes))
    started = time.perf_counter()
    for view_writes, timer_writes in prepared:
        await database["followup_reviews"].bulk_write(view_writes, ordered=False)
        await database["timers"].bulk_write(timer_writes, ordered=False)
    return time.perf_counter() - started


async def run(uri: str, reviews: int, batch_size: int, rounds: int) -> tuple[list[float], list[float]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    raw, ours = [], []
    names = []
    try:
        for number in range(rounds):
            tag = uuid.uuid4().hex[:8]
            events = [opened(index, tag) for index in range(reviews)]
            batches = [events[start : start + batch_size] for start in range(0, reviews, batch_size)]
            names += [f"bench_followup_raw_{tag}", f"bench_followup_project_{tag}"]
            raw_seconds = await baseline(client[names[-2]], batches)
            project_seconds = await project(client[names[-1]], batches)
            raw.append(reviews / raw_seconds)
            ours.append(reviews / project_seconds)
            print(f"round {number + 1}: baseline {raw[-1]:8.0f} events/s, project {ours[-1]:8.0f} events/s")
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()
    return raw, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    print(f"run at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores, {args.reviews} events per round")
    raw, ours = asyncio.run(run(uri, args.reviews, args.batch, args.rounds))
    raw_median, ours_median = statistics.median(raw), statistics.median(ours)
    print(
        f"followup stage: project {ours_median:.0f} events/s, raw bulk-write baseline {raw_median:.0f} events/s, "
        f"ratio {ours_median / raw_median:.2f} (medians of {args.rounds}, batches of {args.batch})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
