"""Ingest, review and follow-up as processes for the end-to-end tests: their settings, start, readiness and stop."""

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from tests.conftest import REPO, Servers

SERVICES = ("ingest", "review", "followup")


@dataclass(frozen=True)
class PipelineTopics:
    raw: str
    closed: str
    events: str
    followups: str

    @classmethod
    def fresh(cls, suffix: str) -> "PipelineTopics":
        return cls(
            f"incidents.raw.{suffix}", f"incidents.closed.{suffix}", f"reviews.events.{suffix}",
            f"followups.events.{suffix}",
        )  # fmt: skip

    def with_dead_letters(self) -> tuple[str, ...]:
        topics = (self.raw, self.closed, self.events, self.followups)
        return (*topics, *(f"{topic}.dlq" for topic in topics))


def group_ids(suffix: str) -> dict[str, str]:
    return {name: f"{name}-{suffix}" for name in SERVICES}


def pipeline_environment(
    servers: Servers, database: str, topics: PipelineTopics, suffix: str, ports: dict[str, int]
) -> dict[str, str]:
    """What the three services need to run together on their own topics, groups, database and ports."""
    groups = group_ids(suffix)
    return {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "MONGODB_DATABASE": database,
        "INGEST_RAW_TOPIC": topics.raw,
        "INGEST_CLOSED_TOPIC": topics.closed,
        "INGEST_GROUP_ID": groups["ingest"],
        "INGEST_HTTP_PORT": str(ports["ingest"]),
        "REVIEW_CLOSED_TOPIC": topics.closed,
        "REVIEW_EVENTS_TOPIC": topics.events,
        "REVIEW_GROUP_ID": groups["review"],
        "REVIEW_HTTP_PORT": str(ports["review"]),
        "REVIEW_FOLLOWUPS_TOPIC": topics.followups,
        "REVIEW_FOLLOWUPS_GROUP_ID": f"review-followups-{suffix}",
        "FOLLOWUP_EVENTS_TOPIC": topics.followups,
        "FOLLOWUP_REVIEW_EVENTS_TOPIC": topics.events,
        "FOLLOWUP_GROUP_ID": groups["followup"],
        "FOLLOWUP_HTTP_PORT": str(ports["followup"]),
    }


def start(env: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    """Each service as ``python -m services.<name>``, its output in ``logs/<name>.log``."""
    return {
        name: subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO,
            env=env,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in SERVICES
    }


def log_tail(logs: Path, service: str) -> str:
    return (logs / f"{service}.log").read_text()[-3000:]


def wait_ready(
    processes: dict[str, subprocess.Popen[bytes]], ports: dict[str, int], logs: Path, timeout: float = 60.0
) -> None:
    """Until every service answers ``/readyz``; a service that exits meanwhile fails at once, with its log."""
    deadline = time.monotonic() + timeout
    pending = set(processes)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{log_tail(logs, name)}")
            try:
                response = httpx.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=2.0)
                if response.status_code == httpx.codes.OK:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}")


def stop(processes: dict[str, subprocess.Popen[bytes]], grace_seconds: float = 30.0) -> list[str]:
    """SIGTERM to every service still running; the names of those killed for outliving ``grace_seconds``."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    killed = []
    for name, process in processes.items():
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed.append(name)
    return killed


async def drop_database(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    await client.drop_database(database)
    await client.close()
