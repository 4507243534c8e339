"""End-to-end throughput as the stored reviews grow: the pipeline of ``benchmarks/pipeline.py`` at 1k, 10k, 100k.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/size_sweep.py [--sizes 1000 10000] [--incidents 500]
    .venv/bin/python benchmarks/size_sweep.py --sizes 1000 10000 100000    # opt-in: 100k takes minutes to seed

For each size, a fresh database is first filled with that many stored reviews, by bulk inserts (``insert_many`` of
1,000) of real documents: review documents built by review's own mapping, of the same 20 services and title as the
pipeline's incidents (so every new incident recurs one of them, resolved a day before it), and follow-up's view of
each (its own projection of the ``ReviewOpened``). Follow-up's timers are not seeded. Then ingest, review and
follow-up start on that database and ``--incidents`` incidents go through them, all at once; throughput is timed
from the events on Kafka, as in ``pipeline.py``. Prints one line per size (seeding time included) and a summary
with the ratio of the largest size's throughput to the smallest's (1.0: cost independent of what is stored).

The database server is NOT restarted between sizes (on this machine it is shared; never restart it): the sizes run
smallest first, each in a fresh database on the same server, which drops it after. The server's cost depends on
what ran before (it keeps a list of recent retryable writes), so each line also shows the server's uptime, and the
larger sizes pay for the seeding before them: the ratio errs on the pessimistic side. For a clean figure, and for
100k at all, use a database server of your own (``deploy/local/stack`` with ``LOCAL_STACK_DATA_DIR``,
``LOCAL_MONGODB_PORT``..., or ``secantusd-py --port 27191 --storage-path <dir>`` with ``MONGODB_URI`` pointing at
it; the broker may stay the shared one) and restart it before each size with ``--sizes`` one at a time. Seeding took
8 s for 10k and 93 s for 100k on a fresh server of this 2-core machine.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import database_of, run_pipeline
from pymongo import AsyncMongoClient

from schemas import IncidentClosed, Severity
from services.followup.domain.projection import apply_event
from services.followup.review_views import TRACKED_REVIEWS, ReviewViewRepository, view_to_document
from services.review.documents import review_to_document
from services.review.domain.record import open_review
from services.review.policy_file import load_policy
from services.review.recurrence_heads import HEADS_COMPLETE
from services.review.repository import REVIEWS, ReviewRepository
from services.review.settings import DEFAULT_POLICY_FILE

SERVICES = 20  # as pipeline.py's incidents
SEED_BATCH = 1_000
SEEDED_RESOLVED = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)  # a day before pipeline.py's incidents
Document = dict[str, Any]


def seed_incident(run: str, number: int) -> IncidentClosed:
    return IncidentClosed.create(
        source="generic",
        source_incident_id=f"seed-{run}-{number}",
        title=f"Synthetic incident {number}",
        severity=(Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)[number % 4],
        service=f"service-{number % SERVICES}",
        team=f"team-{number % 5}",
        started_at=SEEDED_RESOLVED - timedelta(minutes=30),
        resolved_at=SEEDED_RESOLVED,
        labels={"env": "bench", "shard": str(number % 7)},
    )


def seed_documents(run: str, numbers: range, now: datetime) -> tuple[list[Document], list[Document]]:
    """Review documents and follow-up's views of them, for the seeded incidents ``numbers``."""
    policy = load_policy(DEFAULT_POLICY_FILE)
    reviews, views = [], []
    for number in numbers:
        closed = seed_incident(run, number)
        review, opened = open_review(closed, policy.decide(closed), now)
        reviews.append(review_to_document(review))
        view = apply_event(None, opened).view
        if view is not None:
            views.append(view_to_document(view))
    return reviews, views


async def seed(uri: str, run: str, size: int) -> float:
    """Fill the run's database with ``size`` reviews and their views; returns the seconds it took."""
    began = time.monotonic()
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        database = client[database_of(run)]
        # The services' indexes first, so that the inserts maintain them and the services start without building
        # them over the seeded documents.
        repository = ReviewRepository(database)
        await repository.ensure_indexes()
        await ReviewViewRepository(database).ensure_indexes()
        now = datetime.now(UTC).replace(microsecond=0)
        for start in range(0, size, SEED_BATCH):
            reviews, views = seed_documents(run, range(start, min(size, start + SEED_BATCH)), now)
            await database[REVIEWS].insert_many(reviews, ordered=False)
            if views:
                await database[TRACKED_REVIEWS].insert_many(views, ordered=False)
        # Heads for the seeded groups, as review keeps them when it opens reviews: the first ensure_indexes marked the
        # empty collection's heads complete, which would have the seeded reviews never found as earlier occurrences.
        await repository.recurrence_heads.delete_one({"_id": HEADS_COMPLETE})
        await repository.ensure_indexes()
    finally:
        await client.close()
    return time.monotonic() - began


async def server_uptime(uri: str) -> str:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        status = await client.admin.command("serverStatus")
        names = await client.list_database_names()
    finally:
        await client.close()
    return f"server up {float(status.get('uptime', 0.0)):.0f} s, {len(names)} databases"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--incidents", type=int, default=500, help="incidents through the pipeline at each size")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    bootstrap, uri = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URI"]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores (a shared machine: figures noisy)")
    results: list[tuple[int, float]] = []
    for size in sorted(args.sizes):
        run = uuid.uuid4().hex[:8]
        state = asyncio.run(server_uptime(uri))
        seconds = asyncio.run(seed(uri, run, size))
        outcome = run_pipeline(bootstrap, uri, run, args.incidents, rate=None, timeout=args.timeout)
        if len(outcome.opened) < args.incidents:
            print(f"{size:>7} stored: only {len(outcome.opened)} of {args.incidents} ReviewOpened in time")
            return 1
        results.append((size, outcome.throughput))
        rss = ", ".join(f"{name} {rss:.0f}" for name, (rss, _) in outcome.busy.items())
        print(
            f"{size:>7} stored: {outcome.throughput:6.1f} incidents/s end to end ({args.incidents} incidents; "
            f"seeded in {seconds:.0f} s; {state}; RSS MiB {rss})"
        )
    (small, small_rate), (large, large_rate) = results[0], results[-1]
    print(
        f"summary: end to end {small_rate:.1f}/s at {small} stored, {large_rate:.1f}/s at {large}, "
        f"ratio largest/smallest {large_rate / small_rate:.2f} (goal: 1.0, flat)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
