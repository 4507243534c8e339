"""A ``recurrence`` verification judged from a real recurring incident, with ingest, review and follow-up as processes.

An incident enters through ``incidents.raw``; its review gets an action item, done, whose verification is
``recurrence`` over a short window. Then the same problem (same fingerprint) is resolved again and enters the same
way: ingest normalises it, review opens a new review and links it as a recurrence, follow-up records the link. When
the window has passed, follow-up judges the item ``not_effective`` naming the recurring review, and review records
that verdict on the item. Without a recurrence in the window the verdict is ``effective``.

The windows are seconds long (``window_seconds`` on the plan, ``FOLLOWUP_VERIFICATION_EVALUATION_DELAY``), so each
case takes about one window; every wait is on a condition with a deadline.
"""

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.verification import Verdict
from tests.conftest import Servers
from tests.e2e.service_processes import (
    SERVICES,
    PipelineTopics,
    drop_database,
    log_tail,
    pipeline_environment,
    start,
    stop,
    wait_ready,
)
from tests.support.kafka import create_topics, produce
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TOKEN = "e2e-recurrence-editor"  # only known to the review process started here
# Long enough for a second incident to go raw -> review -> follow-up on a busy machine, short enough to wait for.
WINDOW_SECONDS = 12


@dataclass
class Services:
    servers: Servers
    database: str
    raw_topic: str
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def log_tail(self, service: str) -> str:
        return log_tail(self.logs, service)


@pytest.fixture(scope="module")
def services(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    suffix = uuid.uuid4().hex[:8]
    topics = PipelineTopics.fresh(suffix)
    asyncio.run(create_topics(servers.kafka_bootstrap, *topics.with_dead_letters()))
    logs = tmp_path_factory.mktemp("recurrence-logs")
    ports = {name: free_port() for name in SERVICES}
    database = f"e2e_recur_{suffix}"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_PROMETHEUS_")},
        **pipeline_environment(servers, database, topics, suffix, ports),
        "REVIEW_API_TOKENS": json.dumps({TOKEN: {"name": "erin", "role": "editor"}}),
        "FOLLOWUP_SWEEP_INTERVAL_SECONDS": "0.3",
        # Recurrence needs no Prometheus (none is configured here); judge as soon as the window has ended.
        "FOLLOWUP_VERIFICATION_EVALUATION_DELAY": "PT0.5S",
    }
    processes = start(env, logs)
    running = Services(servers, database, topics.raw, ports, processes, logs)
    try:
        wait_ready(processes, ports, logs)
        yield running
    finally:
        stop(processes)
        asyncio.run(drop_database(servers.mongodb_uri, database))


def resolved_incident(incident_id: str, fingerprint: str, title: str, resolved_at: datetime) -> bytes:
    return json.dumps(
        {
            "id": incident_id,
            "title": title,
            "status": "resolved",
            "severity": "high",
            "service": f"svc-{fingerprint}",
            "team": "payments",
            "started_at": (resolved_at - timedelta(minutes=20)).isoformat(),
            "resolved_at": resolved_at.isoformat(),
            "fingerprint": fingerprint,
        }
    ).encode()


async def ingest(services: Services, incident_id: str, fingerprint: str, title: str) -> dict[str, Any]:
    """The incident through ``incidents.raw``; returns the review opened for it."""
    payload = resolved_incident(incident_id, fingerprint, title, datetime.now(UTC) - timedelta(seconds=5))
    await produce(
        services.servers.kafka_bootstrap,
        services.raw_topic,
        payload,
        key=incident_id.encode(),
        headers={"source": "generic"},
    )
    (review,) = await eventually(
        lambda: reviews_of(services, f"svc-{fingerprint}", f"generic:{incident_id}"),
        lambda found: len(found) == 1,
        timeout=60,
    )
    return review


async def reviews_of(services: Services, service: str, incident_key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30.0) as client:
        response = await client.get(services.url("review", "/reviews"), params={"service": service})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return [review for review in found if review["incident_key"] == incident_key]


async def review(services: Services, review_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30.0) as client:
        response = await client.get(services.url("review", f"/reviews/{review_id}"))
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def done_with_recurrence_check(services: Services, opened: dict[str, Any]) -> str:
    """Adds a done action item whose remediation is verified by ``recurrence``; returns the item's id."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30.0) as client:
        response = await client.post(
            services.url("review", f"/reviews/{opened['id']}/action-items"),
            json={
                "version": opened["version"],
                "title": "Retry the payment provider with backoff",
                "owner": "pat",
                "priority": "high",
                "status": "done",
                "verification": {
                    "method": "recurrence",
                    "window_seconds": WINDOW_SECONDS,
                    "stabilisation_seconds": 0,
                    "verifier": "erin",
                },
            },
        )
    assert response.status_code == httpx.codes.CREATED, response.text
    (item,) = response.json()["action_items"]
    return str(item["id"])


async def final_result(services: Services, review_id: str, item_id: str) -> dict[str, Any]:
    """Waits until review recorded a final verdict on the item (past the window and its evaluation)."""

    async def result() -> dict[str, Any] | None:
        (item,) = [one for one in (await review(services, review_id))["action_items"] if one["id"] == item_id]
        found: dict[str, Any] | None = item.get("verification_result")
        return found

    def final(found: dict[str, Any] | None) -> bool:
        return found is not None and found["verdict"] != Verdict.INCONCLUSIVE

    settled = await eventually(result, final, timeout=WINDOW_SECONDS + 45, every=0.5)
    assert settled is not None
    return settled


async def test_an_incident_that_recurs_within_the_window_makes_the_remediation_not_effective(
    services: Services,
) -> None:
    fingerprint = f"fp-{uuid.uuid4().hex[:8]}"
    title = "Payment provider timeouts"
    first = await ingest(services, f"PAY-{fingerprint}-1", fingerprint, title)
    item_id = await done_with_recurrence_check(services, first)

    again = await ingest(services, f"PAY-{fingerprint}-2", fingerprint, title)
    assert again["recurrence"]["earlier_review_id"] == first["id"]
    result = await final_result(services, first["id"], item_id)

    assert result["verdict"] == Verdict.NOT_EFFECTIVE
    evidence = result["evidence"]
    assert (evidence["method"], evidence["judged_by"], evidence["observed"]) == ("recurrence", "followup/recurrence", 1)
    assert again["id"] in evidence["detail"]
    assert again["incident_key"] in evidence["detail"]
    assert datetime.fromisoformat(evidence["window_end"]) - datetime.fromisoformat(
        evidence["window_start"]
    ) == timedelta(seconds=WINDOW_SECONDS)
    reopened = await review(services, first["id"])
    assert item_id in reopened["reopening"]["action_item_ids"]


async def test_no_recurrence_within_the_window_makes_the_remediation_effective(services: Services) -> None:
    fingerprint = f"fp-{uuid.uuid4().hex[:8]}"
    first = await ingest(services, f"DB-{fingerprint}-1", fingerprint, "Primary database failover")
    item_id = await done_with_recurrence_check(services, first)
    # Another problem resolved during the window (another fingerprint, service and title) is no recurrence of it.
    other = f"fp-{uuid.uuid4().hex[:8]}"
    unrelated = await ingest(services, f"DNS-{other}-1", other, "DNS resolution slow")
    assert unrelated.get("recurrence") is None

    result = await final_result(services, first["id"], item_id)

    assert result["verdict"] == Verdict.EFFECTIVE
    evidence = result["evidence"]
    assert (evidence["method"], evidence["observed"]) == ("recurrence", 0)
    assert evidence["detail"] == "no recurrence of the incident was linked during the window"
