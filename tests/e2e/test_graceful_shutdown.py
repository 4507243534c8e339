"""SIGTERM on a busy ingest process: the record in flight finishes and every processed record's offset is committed.

If ingest exited with work processed but not committed, the committed offset would trail what it published; if it
dropped the record in flight, records would be neither published nor committed. Either shows here.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, Servers
from tests.e2e.test_pipeline import generic_incident
from tests.support.kafka import committed_offsets, create_topics, produce_many, read_topic
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

RECORDS = 60


async def test_sigterm_mid_stream_commits_exactly_what_was_processed(servers: Servers, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    raw, closed, group = f"incidents.raw.{suffix}", f"incidents.closed.{suffix}", f"ingest-{suffix}"
    await create_topics(servers.kafka_bootstrap, raw, f"{raw}.dlq", closed)
    await produce_many(
        servers.kafka_bootstrap,
        raw,
        [(generic_incident(f"S-{n}"), f"S-{n}".encode(), {"source": "generic"}) for n in range(RECORDS)],
    )
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "MONGODB_DATABASE": f"shutdown_{suffix}",
        "INGEST_RAW_TOPIC": raw,
        "INGEST_CLOSED_TOPIC": closed,
        "INGEST_GROUP_ID": group,
        "INGEST_HTTP_PORT": str(free_port()),
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - a child process we signal and wait for below
            [sys.executable, "-m", "services.ingest"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await eventually(
            lambda: read_topic(servers.kafka_bootstrap, closed, expect=1, timeout=1.0),
            lambda got: len(got) >= 1,
            timeout=60.0,
        )
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    # A clean shutdown on SIGTERM exits 0: supervisors read "killed by SIGTERM" as a failure.
    assert code == 0, output[-3000:]
    assert "Application shutdown complete" in output

    published = await read_topic(servers.kafka_bootstrap, closed, expect=RECORDS, timeout=5.0)
    committed = await committed_offsets(servers.kafka_bootstrap, group, raw)
    assert len({record.key for record in published}) == len(published), "no incident published twice"
    assert committed == len(published), f"committed {committed}, published {len(published)}"
