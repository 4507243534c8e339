"""How fast the web UI's pages answer with 10,000 reviews stored: the reviews list and one review's page.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/ui_pages.py [--reviews 10000] [--requests 200]

Stores ``--reviews`` review documents (bulk inserts of real, filled-in reviews: sections, timeline, action items) in
a fresh database, then asks the review app in process (httpx over ASGI: template rendering, the service layer and
MongoDB included; no network hop, no Kafka) for the list page
(first page, newest first, with the count; and with the filters people use: a team, "assigned to me", both, title
text, a later page, and a team with ``overdue=true`` that matches nothing), for ``GET /reviews`` with filters (exact
``X-Total-Count``) and for review pages picked at random, signed in as a viewer (``owner-7``, owner of one review in
30). Prints p50/p95 per case and the goal: p95 under 150 ms for the lists and 100 ms for a review page.
Drops the database at the end.

The documents are stored without list positions, as reviews stored before positions existed: the benchmark then
gives them positions and counts as the app does in the background after an upgrade (``position_unlisted``, the
one-time backfill; its time is printed), so the list is measured as a real deployment serves it. The list reads
growing windows of list positions (``ReviewRepository.find_page``), a filtered one only the candidates of one indexed
condition in each window (``documents.candidate_queries``), and takes an unfiltered total from the stored counts.
No review is overdue: the team + ``overdue=true`` filter reads the empty range of ``status_due``. The review page is
one read by id. What is left is template rendering (a few ms).
"""

import argparse
import asyncio
import functools
import json
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from schemas import ActionItemCategory, ActionItemPriority, IncidentClosed, Severity
from services.review.app import create_app
from services.review.documents import review_to_document
from services.review.domain.editing import ActionItemDraft, SectionEdit, add_action_item, edit_sections
from services.review.domain.policy import ReviewDecision
from services.review.domain.record import Review, open_review
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings

TOKEN = "bench-viewer-token-0123456789"
# The signed-in viewer owns one review in 30 (owners are ``owner-0`` to ``owner-29``): "assigned to me" lists those.
VIEWER = "owner-7"
RESOLVED = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
# The list's cases: what people filter by all day, from matching nothing to about one review in seven.
LIST_CASES = {
    "list page": "/",
    "list page, team filter": "/?team=team-3&overdue=true",  # matches nothing
    "list, team (1 in 8)": "/?team=team-3",
    "list, assigned to me": "/?mine=1",  # 1 in 30
    "list, team + mine": "/?team=team-3&mine=1",  # 1 in 125
    "list, title text": "/?q=region+3",  # 1 in 7, no index
    "list, team page 5": "/?team=team-3&page=5",
}
# GET /reviews: the same read, with the exact total (X-Total-Count).
API_CASES = {
    "api, team (1 in 8)": "/reviews?team=team-3&limit=25",
    "api, service (1 in 40)": "/reviews?service=service-3&limit=25",
    "api, team + overdue": "/reviews?team=team-3&overdue=true&limit=25",
}
GOALS = {**dict.fromkeys([*LIST_CASES, *API_CASES], 150.0), "review page": 100.0}


def filled_review(number: int, now: datetime) -> Review:
    incident = IncidentClosed.create(
        source="generic",
        source_incident_id=f"bench-{number}",
        title=f"Checkout latency above target in region {number % 7} ({number})",
        severity=(Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM)[number % 3],
        service=f"service-{number % 40}",
        team=f"team-{number % 8}",
        started_at=RESOLVED - timedelta(minutes=30 + number % 90, days=number % 60),
        resolved_at=RESOLVED - timedelta(days=number % 60),
        timeline=[
            {"at": RESOLVED - timedelta(minutes=minute), "kind": "note", "message": f"step {minute}"}
            for minute in range(10)
        ],
    )
    decision = ReviewDecision(
        required=True,
        reason="benchmark",
        rule="bench",
        due_at=RESOLVED + timedelta(days=5),
        owner=f"owner-{number % 30}",
    )
    review, _ = open_review(incident, decision, now)
    edit = SectionEdit.model_validate(
        {
            "participants": [{"name": f"person-{number % 50}", "function": "operations"}],
            "analysis": {"what_went_wrong": ["The pool limit was lowered by a release"] * 3},
            "contributing_factors": [{"category": "technology", "description": "A stale default"}],
            "recommendations": ["Canary every configuration change"],
        }
    )
    change = edit_sections(review, edit, by="bench", now=now)
    assert change is not None
    review = change[0]
    for item in range(3):
        draft = ActionItemDraft(
            title=f"Action {item}",
            owner=f"owner-{item}",
            priority=ActionItemPriority.HIGH,
            category=ActionItemCategory.MONITORING_ALERTING,
        )
        review = add_action_item(review, draft, by="bench", now=now)[0]
    return review


async def timed(name: str, requests: int, call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, float]:
    for _ in range(10):  # warm-up: templates compiled, connections open
        (await call()).raise_for_status()
    durations = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = await call()
        durations.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.status_code
    p50 = statistics.median(durations)
    p95 = statistics.quantiles(durations, n=20)[18]
    verdict = "meets" if p95 < GOALS[name] else "MISSES"
    print(f"{name:<26} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   goal p95 < {GOALS[name]:.0f} ms: {verdict}")
    return p50, p95


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    database = f"bench_ui_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        template = [filled_review(number, now) for number in range(min(args.reviews, 500))]
        ids = []
        for start in range(0, args.reviews, 1_000):
            batch = []
            for number in range(start, min(start + 1_000, args.reviews)):
                base = template[number % len(template)]
                review_id, key = f"bench-{number}", f"generic:bench-{number}"
                created = now - timedelta(minutes=number)
                batch.append(
                    review_to_document(
                        base.model_copy(update={"id": review_id, "incident_key": key, "created_at": created})
                    )
                )
                ids.append(review_id)
            await client[database].reviews.insert_many(batch)
        settings = ReviewSettings(api_tokens=json.dumps({TOKEN: {"name": VIEWER, "role": "viewer"}}))
        app = create_app(KafkaSettings(), MongoSettings(uri=uri, database=database), settings)
        await app.state.review_repository.ensure_indexes()
        started = time.perf_counter()
        positioned = await app.state.review_repository.position_unlisted()
        print(f"{positioned} reviews given list positions in {time.perf_counter() - started:.1f} s (one-time backfill)")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://review") as http:
            page = await http.get("/sign-in")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            signed = await http.post("/sign-in", data={"token": TOKEN, "csrf_token": csrf.group(1)})
            assert signed.status_code == 303, signed.text
            print(f"{args.reviews} reviews stored; {args.requests} requests per page")
            for name, path in LIST_CASES.items():
                await timed(name, args.requests, functools.partial(http.get, path))
            for name, path in API_CASES.items():
                api_get = functools.partial(http.get, path, headers={"Authorization": f"Bearer {TOKEN}"})
                await timed(name, args.requests, api_get)
            await timed("review page", args.requests, lambda: http.get(f"/review/{random.choice(ids)}"))
        await app.state.mongo_client.close()
    finally:
        await client.close()
        # A client of its own: the server may have closed the first one's idle connections during the timing.
        cleaner: AsyncMongoClient[dict[str, Any]]
        async with AsyncMongoClient(uri) as cleaner:
            await cleaner.drop_database(database)


if __name__ == "__main__":
    asyncio.run(main())
