"""The local stack's database keeps every acknowledged write when it is killed (SIGKILL) and started again.

The test starts its own SecantusDB, with the command line the stack uses (``deploy/local/stack mongodb-command``), on
a free port in a temporary folder, so killing it disturbs no one. Reviews are written the way the service writes
them (review and outbox entry in one transaction), by several writers at once, as under a burst of incidents.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.review.domain.policy import ReviewDecision
from services.review.domain.record import open_review
from services.review.repository import ReviewRepository
from tests.conftest import STACK
from tests.integration.review.conftest import incident
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REVIEWS = 200
WRITERS = 8
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
DECISION = ReviewDecision(required=True, reason="durability test", due_at=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stack_mongodb_command(data_dir: Path, port: int) -> list[str]:
    """The stack's SecantusDB command line for this data folder and port, as the stack itself would run it."""
    env = {
        **os.environ,
        "LOCAL_STACK_DATA_DIR": str(data_dir),
        "LOCAL_MONGODB_PORT": str(port),
        "PYTHON": sys.executable,
    }
    printed = subprocess.run(
        [str(STACK), "mongodb-command"], env=env, check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return printed.splitlines()


@contextmanager
def database_server(argv: list[str], log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def connect(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=2000)


async def wait_until_answering(uri: str, server: subprocess.Popen[bytes]) -> None:
    async def answers() -> bool:
        assert server.poll() is None, f"the database server exited with {server.returncode}"
        client = connect(uri)
        try:
            await client.admin.command("ping")
        except PyMongoError:
            return False
        finally:
            await client.close()
        return True

    await eventually(answers, bool, timeout=60)


async def open_reviews(repository: ReviewRepository, unique: str) -> list[str]:
    """Open ``REVIEWS`` reviews, ``WRITERS`` at a time; the ids of those whose transaction was acknowledged."""
    acknowledged: list[str] = []
    pending = [incident(f"DUR-{unique}-{number}") for number in range(REVIEWS)]

    async def writer() -> None:
        while pending:
            review, opened = open_review(pending.pop(), DECISION, NOW)
            assert await repository.open_review(review, [opened], "reviews.events", NOW)
            acknowledged.append(review.id)

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return acknowledged


async def test_acknowledged_reviews_survive_a_sigkill_of_the_database(tmp_path: Path, unique: str) -> None:
    port = free_port()
    argv = stack_mongodb_command(tmp_path / "stack", port)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with (tmp_path / "secantusdb.log").open("ab") as log:
        with database_server(argv, log) as server:
            await wait_until_answering(uri, server)
            client = connect(uri)
            repository = ReviewRepository(client["durability"])
            await repository.ensure_indexes()
            acknowledged = await open_reviews(repository, unique)
            server.kill()  # right after the last acknowledgement: nothing gets time to reach the disk on its own
            server.wait(timeout=15)
            await client.close()
        assert len(acknowledged) == REVIEWS

        with database_server(argv, log) as server:
            await wait_until_answering(uri, server)
            client = connect(uri)
            try:
                database = client["durability"]
                reviews = {document["_id"] async for document in database.reviews.find({}, {"_id": 1})}
                announced = {document["key"] async for document in database.review_outbox.find({}, {"key": 1})}
            finally:
                await client.close()

    lost_reviews, lost_events = set(acknowledged) - reviews, set(acknowledged) - announced
    assert not lost_reviews, f"{len(lost_reviews)} of {REVIEWS} acknowledged reviews lost in the crash"
    assert not lost_events, f"{len(lost_events)} of {REVIEWS} acknowledged outbox entries lost in the crash"
