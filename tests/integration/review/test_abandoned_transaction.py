"""A review replica killed in the middle of a transaction costs the next writer of that review seconds, not a minute.

The killed replica's transaction holds the review until the server aborts it (MongoDB's
``transactionLifetimeLimitSeconds``, 60 s by default; SecantusDB's is fixed at 60 s). Meanwhile every transaction
that writes the review meets a write conflict, which the driver would retry for up to 120 s; the repository's
transaction time limit gives up well before, with an error the caller can retry.
"""

import asyncio
import sys
import time
from datetime import UTC, datetime

import pytest
from bson.binary import UUID_SUBTYPE, Binary
from pymongo.errors import ExecutionTimeout

from services.review.domain.editing import SectionEdit, edit_sections
from services.review.domain.policy import ReviewDecision
from services.review.domain.record import open_review
from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.integration.review.conftest import incident
from tests.support.mongo import scratch_database

pytestmark = pytest.mark.integration

# What the repository's default time limit must stay under; the killed replica's transaction lasts 60 s.
BOUND_SECONDS = 15.0
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
TOPIC = "reviews.events"
DECISION = ReviewDecision(required=True, reason="abandoned transaction test", due_at=None)

# A replica in the middle of a change: it has written the review inside a transaction and not committed yet. It
# prints its session id and then waits to be killed.
REPLICA_MID_TRANSACTION = """
import sys
from pymongo import MongoClient

uri, database, review_id = sys.argv[1:]
client = MongoClient(uri)
session = client.start_session()
session.start_transaction()
client[database].reviews.update_one(
    {"_id": review_id}, {"$set": {"owner": "the replica that dies"}, "$inc": {"version": 1}}, session=session
)
print(session.session_id["id"].hex(), flush=True)
sys.stdin.read()
"""


async def kill_a_replica_mid_transaction(uri: str, database: str, review_id: str) -> Binary:
    """The session id of the transaction the killed replica left open on ``review_id``."""
    replica = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        REPLICA_MID_TRANSACTION,
        uri,
        database,
        review_id,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert replica.stdout is not None
        session_id = (await asyncio.wait_for(replica.stdout.readline(), timeout=30)).decode().strip()
        assert session_id, "the replica exited before writing the review"
    finally:
        if replica.returncode is None:
            replica.kill()  # SIGKILL: no abort, no endSessions
        await replica.wait()
    return Binary(bytes.fromhex(session_id), UUID_SUBTYPE)


async def test_a_write_blocked_by_a_killed_replicas_transaction_gives_up_within_seconds(
    servers: Servers, unique: str
) -> None:
    async with scratch_database(servers.mongodb_uri, f"review_{unique}") as db:
        repository = ReviewRepository(db)
        await repository.ensure_indexes()
        review, opened = open_review(incident(f"ABANDONED-{unique}"), DECISION, NOW)
        assert await repository.open_review(review, [opened], TOPIC, NOW)
        change = edit_sections(review, SectionEdit(owner="rita"), by="rita", now=NOW)
        assert change is not None
        edited, updated = change

        abandoned = await kill_a_replica_mid_transaction(servers.mongodb_uri, db.name, review.id)
        try:
            started = time.monotonic()
            with pytest.raises(ExecutionTimeout):
                await asyncio.wait_for(repository.save(edited, review.version, [updated], TOPIC, NOW), BOUND_SECONDS)
            waited = time.monotonic() - started
            assert waited < BOUND_SECONDS
            # Nothing half-written: the review is as it was and its change was not announced.
            stored = await repository.get(review.id)
            assert stored is not None
            assert (stored.version, stored.owner) == (review.version, review.owner)
            assert await db.review_outbox.count_documents({"key": review.id}) == 1
        finally:
            # What the server's lifetime limit does after 60 s, now, so the database can be dropped.
            await db.client.admin.command("killSessions", [{"id": abandoned}])

        # Once the abandoned transaction is gone, the same write goes through: the error was worth retrying.
        await repository.save(edited, review.version, [updated], TOPIC, NOW)
        stored = await repository.get(review.id)
        assert stored is not None
        assert (stored.version, stored.owner) == (review.version + 1, "rita")
