"""Review's cost per incident as the stored reviews grow: opening (recurrence look-up and link included) at 1k and 10k.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/review_size.py [--sizes 1000 10000] [--incidents 100] [--batch 100]

Drives the review service layer against MongoDB directly (no Kafka): for each size, stored reviews are first brought
up to that many by bulk inserts of real review documents, then ``--incidents`` incidents are opened one after the
other through ``ReviewService.open_for_incident`` and timed. Every incident recurs: 20 services, one normalised
title, the same resolution time (as ``benchmarks/pipeline.py`` produces them), so each opening looks up and links an
earlier review. Before timing, one incident per service is opened untimed, so each timed one meets the state the
service keeps in a steady run. With ``--batch N``, as many incidents again are then opened N at a time through
``ReviewService.open_for_incidents`` (after the batch's look-up, as the consumer does) and timed: the lines and the
summary give both costs per incident and their ratio. Uses a fresh database per run and drops it at the end; prints
one line per size and a summary line with the ratio of the largest size's cost to the smallest's (1.0: independent of
what is stored).
"""

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from schemas import IncidentClosed, Severity
from services.review.documents import review_to_document
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import open_review
from services.review.metrics import ReviewMetrics
from services.review.repository import ReviewRepository
from services.review.service import ReviewService

SERVICES = 20
RESOLVED = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
SEED_BATCH = 1_000


def incident(run: str, number: int) -> IncidentClosed:
    return IncidentClosed.create(
        source="generic",
        source_incident_id=f"{run}-{number}",
        title=f"Synthetic incident {number}",
        severity=(Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)[number % 4],
        service=f"service-{number % SERVICES}",
        team=f"team-{number % 5}",
        started_at=RESOLVED - timedelta(minutes=30),
        resolved_at=RESOLVED,
        labels={"env": "bench"},
    )


async def server_state(client: AsyncMongoClient[dict[str, Any]]) -> str:
    """How fresh the server is: its uptime and how many databases it holds (other runs' data slow it down too)."""
    names = await client.list_database_names()
    try:
        status = await client.admin.command("serverStatus")
        uptime = f"up {float(status.get('uptime', 0.0)):.0f}s"
    except Exception:
        uptime = "uptime unknown"
    fresh = "fresh" if len(names) <= 3 else "not fresh"
    return f"server {fresh}: {uptime}, {len(names)} databases"


async def open_in_batches(service: ReviewService, closed: list[IncidentClosed], batch: int) -> None:
    for start in range(0, len(closed), batch):
        chunk = closed[start : start + batch]
        known = await service.incidents_with_review(incident.incident_key for incident in chunk)
        opened = await service.open_for_incidents([item for item in chunk if item.incident_key not in known])
        if any(item.review is None or item.review.recurrence is None for item in opened):
            raise RuntimeError("an incident of the batch did not open a review linked to an earlier one")


async def measure(sizes: list[int], incidents: int, uri: str, batch_size: int | None) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    run = uuid.uuid4().hex[:8]
    database = client[f"bench_review_size_{run}"]
    print(f"database {database.name}; {await server_state(client)}")
    repository = ReviewRepository(database)
    await repository.ensure_indexes()
    policy = ReviewPolicy()
    service = ReviewService(
        repository,
        policy,
        ReviewMetrics.create(),
        events_topic="reviews.events.bench",
        recurrence_window=timedelta(days=90),
        clock=lambda: datetime.now(UTC),
    )
    number = 0
    results: list[tuple[int, float]] = []
    batched: list[tuple[int, float]] = []
    try:
        for size in sizes:
            stored = await repository.reviews.count_documents({})
            while stored < size:
                batch = []
                for _ in range(min(SEED_BATCH, size - stored)):
                    closed = incident(run, number)
                    number += 1
                    batch.append(review_to_document(open_review(closed, policy.decide(closed), datetime.now(UTC))[0]))
                await repository.reviews.insert_many(batch)
                stored += len(batch)
            for _ in range(SERVICES):  # untimed: one per service
                await service.open_for_incident(incident(run, number))
                number += 1
            started = time.perf_counter()
            for _ in range(incidents):
                opened = await service.open_for_incident(incident(run, number))
                if opened.review is None or opened.review.recurrence is None:
                    raise RuntimeError(f"incident {number} did not open a review linked to an earlier one")
                number += 1
            per_incident = (time.perf_counter() - started) / incidents
            results.append((size, per_incident))
            print(f"{size:>7} stored: {per_incident * 1000:8.2f} ms per incident ({1 / per_incident:7.1f}/s)")
            if batch_size is not None:
                storm = [incident(run, number + offset) for offset in range(incidents)]
                number += incidents
                started = time.perf_counter()
                await open_in_batches(service, storm, batch_size)
                per_batched = (time.perf_counter() - started) / incidents
                batched.append((size, per_batched))
                print(
                    f"{size:>7} stored, batches of {batch_size}: {per_batched * 1000:8.2f} ms per incident "
                    f"({1 / per_batched:7.1f}/s), {per_incident / per_batched:.1f}x faster than one by one"
                )
            # The link must not make one review grow with every recurrence.
            largest = await repository.reviews.aggregate(
                [{"$project": {"n": {"$size": "$related_reviews"}}}, {"$sort": {"n": -1}}, {"$limit": 1}]
            )
            print(f"         largest related_reviews: {(await largest.to_list())[0]['n']} ids")
    finally:
        await client.drop_database(database.name)
        await client.close()
    (small, small_cost), (large, large_cost) = results[0], results[-1]
    print(
        f"summary: {small} stored {small_cost * 1000:.2f} ms/incident, {large} stored {large_cost * 1000:.2f} "
        f"ms/incident, ratio {large_cost / small_cost:.2f}"
    )
    if batched:
        alone = sum(cost for _, cost in results) / len(results)
        together = sum(cost for _, cost in batched) / len(batched)
        print(
            f"summary (batches of {batch_size}): one by one {alone * 1000:.2f} ms/incident, "
            f"batched {together * 1000:.2f} ms/incident, ratio {alone / together:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--batch", type=int, default=None, help="also time opening N incidents at a time")
    args = parser.parse_args()
    asyncio.run(measure(sorted(args.sizes), args.incidents, os.environ["MONGODB_URI"], args.batch))


if __name__ == "__main__":
    main()
