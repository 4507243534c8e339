"""kill -9 of notify between a send and its record: the message in flight is sent once more, nothing else twice.

Notify runs as a process with a real SMTP server in the test. The server SIGKILLs notify as it accepts the third
message, so that message is delivered but not recorded as sent (and the batch's offsets may not be committed). A
new notify process consumes again (queuing nothing new: the keys exist), takes the unrecorded message over once its
lease runs out and sends it again (same Message-ID), then sends the rest. That duplicate is the documented window.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import IO

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pymongo import AsyncMongoClient

from tests.conftest import REPO, Servers
from tests.integration.notify.receivers import MailSink, Received, smtp_server
from tests.support.kafka import create_topics, produce_many
from tests.support.ports import free_port
from tests.support.waiting import eventually
from tests.unit.notify.builders import overdue

pytestmark = pytest.mark.e2e

PEOPLE = 6
KILL_ON = 3


class KillingSink(MailSink):
    """Accepts every message; on the ``KILL_ON``-th, SIGKILLs the notify process before answering it."""

    pid: int | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.received) == KILL_ON and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        return answer


def start_notify(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.notify"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    async def probe() -> int:
        if process.poll() is not None:
            output = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"notify exited early:\n{output[-3000:]}")
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0)).status_code
        except httpx.HTTPError:
            return 0

    await eventually(probe, lambda status: status == 200, timeout=60.0)


async def test_kill_9_between_send_and_record_resends_only_the_message_in_flight(
    servers: Servers, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"followups.events.{suffix}"
    await create_topics(servers.kafka_bootstrap, topic, f"{topic}.dlq", f"reviews.events.{suffix}")
    routing = tmp_path / "routing.yaml"
    routing.write_text("people:\n" + "".join(f"  p{n}: {{email: p{n}@example.org}}\n" for n in range(PEOPLE)))
    events = [overdue(f"p{n}", n) for n in range(PEOPLE)]
    sink = KillingSink()

    async def reached() -> set[str]:
        return {recipient for mail in sink.messages() for recipient in mail.recipients}

    with smtp_server(sink=sink) as smtp:
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
            "MONGODB_URI": servers.mongodb_uri,
            "MONGODB_DATABASE": f"notify_crash_{suffix}",
            "NOTIFY_FOLLOWUP_EVENTS_TOPIC": topic,
            "NOTIFY_REVIEW_EVENTS_TOPIC": f"reviews.events.{suffix}",
            "NOTIFY_GROUP_ID": f"notify-{suffix}",
            "NOTIFY_HTTP_PORT": str(port),
            "NOTIFY_ROUTING_FILE": str(routing),
            "NOTIFY_SMTP_HOST": "127.0.0.1",
            "NOTIFY_SMTP_PORT": str(smtp.port),
            "NOTIFY_SMTP_SECURITY": "none",
            "NOTIFY_DISPATCH_INTERVAL_SECONDS": "0.2",
            "NOTIFY_LEASE_SECONDS": "2",
        }
        log = tmp_path / "notify.log"
        with log.open("ab") as out:
            first = start_notify(env, out)
        try:
            sink.pid = first.pid
            await ready(port, first, log)
            await produce_many(
                servers.kafka_bootstrap,
                topic,
                [(event.model_dump_json().encode(), event.review_id.encode(), {}) for event in events],
            )
            assert await asyncio.to_thread(first.wait, 60) == -signal.SIGKILL
            assert len(sink.messages()) == KILL_ON
            with log.open("ab") as out:
                second = start_notify(env, out)
            try:
                await eventually(reached, lambda seen: len(seen) == PEOPLE, timeout=60.0)
                # Give a wrongly repeated send the time to show itself: several dispatch passes and leases.
                await asyncio.sleep(3)
            finally:
                second.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(second.wait, 30) == 0
        finally:
            if first.poll() is None:
                first.kill()
            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(servers.mongodb_uri)
            await client.drop_database(env["MONGODB_DATABASE"])
            await client.close()
    received: list[Received] = sink.messages()
    per_person = Counter(r for mail in received for r in mail.recipients)
    in_flight = received[KILL_ON - 1].recipients[0]
    assert per_person == {f"p{n}@example.org": 2 if f"p{n}@example.org" == in_flight else 1 for n in range(PEOPLE)}
    copies = [mail.message["Message-ID"] for mail in received if mail.recipients == (in_flight,)]
    assert copies[0] == copies[1], "the copy carries the same Message-ID, so mail systems can drop it"
