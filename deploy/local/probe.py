"""Readiness probe for the local stack (deploy/local/stack).

Kafka counts as ready once a record produced with acks=all to the
``__stack_probe`` topic has been read back from the broker; MongoDB counts as
ready once it answers ``ping``. Both are retried until a shared deadline.

Exit code 0 when everything is ready, 1 otherwise. Every component gets one
line on stderr: ``<name>: ready (...)`` or ``<name>: NOT READY - <last error>``
(the stack script greps the latter to decide which log to show).

Usage:
    python deploy/local/probe.py --kafka 127.0.0.1:9092 \
        --mongodb 'mongodb://127.0.0.1:27017/?directConnection=true' \
        [--timeout 90] [--watch-pid kafka=1234] [--watch-pid mongodb=5678]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

PROBE_TOPIC = "__stack_probe"
RETRY_PAUSE_S = 0.5
ATTEMPT_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 2.0


@dataclass
class Outcome:
    name: str
    ready: bool = False
    detail: str = ""
    attempts: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def record_error(self, exc: BaseException) -> None:
        name, text = type(exc).__name__, str(exc).strip()
        self.errors.append(text if text.startswith(name) else f"{name}: {text}".rstrip(": "))


class ProcessDiedError(Exception):
    """A watched server process exited while we were waiting for it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _retry(
    outcome: Outcome,
    attempt: Callable[[], Awaitable[str]],  # returns the "ready" detail
    deadline: float,
    pid: int | None,
) -> Outcome:
    started = time.monotonic()
    while True:
        if pid is not None and not _pid_alive(pid):
            outcome.record_error(ProcessDiedError(f"process {pid} has exited"))
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        outcome.attempts += 1
        try:
            # Leave room for closing the clients after a timed-out attempt.
            budget = max(0.5, min(remaining - CLOSE_TIMEOUT_S, ATTEMPT_TIMEOUT_S))
            outcome.detail = await asyncio.wait_for(attempt(), budget)
            outcome.ready = True
            break
        except TimeoutError:
            outcome.record_error(TimeoutError("attempt timed out"))
        except Exception as exc:  # any failure means "not ready yet"
            outcome.record_error(exc)
        await asyncio.sleep(min(RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
    outcome.elapsed_s = time.monotonic() - started
    return outcome


async def _close(closer: Callable[[], Awaitable[object]], timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Close a client without letting a sick server stall the probe (best effort)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closer(), timeout_s)


async def _kafka_round_trip(bootstrap: str) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )
    try:
        await producer.start()
        meta = await producer.send_and_wait(PROBE_TOPIC, value=marker, key=b"probe")
    finally:
        await _close(producer.stop)

    tp = TopicPartition(PROBE_TOPIC, meta.partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )
    try:
        await consumer.start()
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await consumer.getone(tp)
    finally:
        await _close(consumer.stop)
    if record.value != marker:
        raise RuntimeError(f"read back an unexpected record at {PROBE_TOPIC}[{meta.partition}]@{meta.offset}")
    return f"produced and consumed {PROBE_TOPIC}[{meta.partition}]@{meta.offset}"


async def _mongodb_ping(uri: str) -> str:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=2_000, connectTimeoutMS=2_000
    )
    try:
        reply = await client.admin.command("ping")
        if reply.get("ok") != 1:
            raise RuntimeError(f"unexpected ping reply {reply!r}")
        hello = await client.admin.command("hello")
    finally:
        await _close(client.close)
    set_name = hello.get("setName")
    return "ping ok" + (f", replica set {set_name!r}" if set_name else ", standalone")


def _parse_watch(values: list[str]) -> dict[str, int]:
    pids: dict[str, int] = {}
    for value in values:
        name, sep, pid = value.partition("=")
        if not sep or not pid.isdigit():
            raise SystemExit(f"probe: --watch-pid expects NAME=PID, got {value!r}")
        pids[name] = int(pid)
    return pids


async def _main(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    pids = _parse_watch(args.watch_pid)
    checks = []
    if args.kafka:
        checks.append(_retry(Outcome("kafka"), lambda: _kafka_round_trip(args.kafka), deadline, pids.get("kafka")))
    if args.mongodb:
        checks.append(_retry(Outcome("mongodb"), lambda: _mongodb_ping(args.mongodb), deadline, pids.get("mongodb")))
    if not checks:
        print("probe: nothing to check (pass --kafka and/or --mongodb)", file=sys.stderr)
        return 1

    outcomes = await asyncio.gather(*checks)
    for o in outcomes:
        if o.ready:
            print(f"{o.name}: ready ({o.detail}; {o.elapsed_s:.1f}s, {o.attempts} attempt(s))", file=sys.stderr)
        else:
            last = o.errors[-1] if o.errors else "no attempt made"
            print(
                f"{o.name}: NOT READY - {last} (gave up after {o.elapsed_s:.1f}s, {o.attempts} attempt(s))",
                file=sys.stderr,
            )
    return 0 if all(o.ready for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Readiness probe for the local Kafka + MongoDB stack.")
    parser.add_argument("--kafka", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--mongodb", metavar="URI", help="MongoDB connection string")
    parser.add_argument("--timeout", type=float, default=90.0, help="overall deadline in seconds (default 90)")
    parser.add_argument(
        "--watch-pid",
        action="append",
        default=[],
        metavar="NAME=PID",
        help="give up on NAME at once if process PID exits (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show client library logging")
    args = parser.parse_args(argv)

    # aiokafka logs every refused connection at ERROR while the broker boots;
    # the probe reports the last error itself.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("probe: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
