"""End-to-end throughput and latency: N closed incidents through ingest, review and follow-up as processes.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/pipeline.py [--incidents 1000]

Produces N generic incidents to a fresh ``incidents.raw`` topic (all at once, or open-loop at ``--rate`` per second),
then measures, from the events on Kafka, how long until every ``ReviewOpened`` is on ``reviews.events`` and
follow-up has counted them all; prints throughput, latency percentiles (produce acknowledged -> ``ReviewOpened``
published), whether the backlog stayed bounded, and each service's resident memory and CPU time. Uses its own topics
and database; drops the database at the end.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("ingest", "review", "followup")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_figures(pid: int) -> tuple[float, float]:
    """Resident memory (MiB) and CPU seconds (user + system) of a running process, from /proc."""
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kib / 1024, (int(fields[11]) + int(fields[12])) / ticks


def incident(number: int, run: str) -> bytes:
    return json.dumps(
        {
            "id": f"{run}-{number}",
            "title": f"Synthetic incident {number}",
            "status": "resolved",
            "severity": ("critical", "high", "medium", "low")[number % 4],
            "service": f"service-{number % 20}",
            "team": f"team-{number % 5}",
            "started_at": "2026-11-28T08:00:00Z",
            "resolved_at": "2026-11-28T08:30:00Z",
            "labels": {"env": "bench", "shard": str(number % 7)},
        }
    ).encode()


async def produce(bootstrap: str, topic: str, count: int, run: str, rate: float | None) -> dict[str, float]:
    """Produce all incidents, at once or open-loop at ``rate`` per second; returns each key's acknowledgement time.

    Open loop: each incident is sent at its scheduled time whatever the pipeline's progress, as an alert storm does.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    acked: dict[str, float] = {}

    def record_ack(key: str) -> Any:
        return lambda _future: acked.__setitem__(key, time.time())

    try:
        futures = []
        begin = time.monotonic()
        for number in range(count):
            if rate is not None:
                delay = begin + number / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            future = await producer.send(
                topic, incident(number, run), key=str(number).encode(), headers=[("source", b"generic")]
            )
            future.add_done_callback(record_ack(f"generic:{run}-{number}"))
            futures.append(future)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return acked


async def wait_for_opened(bootstrap: str, topic: str, count: int, timeout: float) -> dict[str, float]:
    """Each incident key's ``ReviewOpened`` publication time, read from ``reviews.events`` (the database is not polled:
    polling it would load the very server being measured). The record's timestamp is the relay's send time."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    opened: dict[str, float] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(opened) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    if event.get("type") == "ReviewOpened":
                        opened.setdefault(event["incident_key"], record.timestamp / 1000)
    finally:
        await consumer.stop()
    return opened


async def drop_database(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


async def produce_and_wait(
    bootstrap: str, run: str, count: int, rate: float | None, timeout: float
) -> tuple[dict[str, float], dict[str, float], float]:
    waiting = asyncio.create_task(wait_for_opened(bootstrap, f"reviews.events.{run}", count, timeout))
    acked = await produce(bootstrap, f"incidents.raw.{run}", count, run, rate)
    produced = time.time()
    return acked, await waiting, produced


def followup_counted(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lessons_review_events_total{") and 'outcome="tracked"' in line
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--rate", type=float, help="open loop: produce this many incidents per second (default: at once)"
    )
    args = parser.parse_args()
    bootstrap, uri = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URI"]
    run = uuid.uuid4().hex[:8]
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "MONGODB_DATABASE": f"bench_{run}",
        "INGEST_RAW_TOPIC": f"incidents.raw.{run}",
        "INGEST_CLOSED_TOPIC": f"incidents.closed.{run}",
        "REVIEW_CLOSED_TOPIC": f"incidents.closed.{run}",
        "REVIEW_EVENTS_TOPIC": f"reviews.events.{run}",
        "FOLLOWUP_REVIEW_EVENTS_TOPIC": f"reviews.events.{run}",
        **{f"{name.upper()}_GROUP_ID": f"{name}-{run}" for name in SERVICES},
        **{f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()},
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in SERVICES
    }
    try:
        for port in ports.values():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        idle = {name: proc_figures(process.pid) for name, process in processes.items()}

        started = time.time()
        acked, opened, produced = asyncio.run(produce_and_wait(bootstrap, run, args.incidents, args.rate, args.timeout))
        stored = max(opened.values(), default=time.time())
        while followup_counted(ports["followup"]) < len(opened) and time.time() - stored < 60:
            time.sleep(0.2)
        counted = time.time()
        busy = {name: proc_figures(process.pid) for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=30)
        asyncio.run(drop_database(uri, f"bench_{run}"))

    latencies = sorted(opened[key] - acked[key] for key in opened if key in acked)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    # Bounded backlog: the latency of the last tenth is no worse than twice that of the first tenth (plus slack).
    by_produce = [opened[key] - acked[key] for key in sorted(acked, key=acked.__getitem__) if key in opened]
    tenth = max(1, len(by_produce) // 10)
    first, last = statistics.median(by_produce[:tenth] or [0.0]), statistics.median(by_produce[-tenth:] or [0.0])
    bounded = last <= 2 * first + 0.5
    print(f"run {run} at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores")
    print(f"incidents produced          {args.incidents} in {produced - started:.2f} s")
    mode = f"open loop at {args.rate:g}/s" if args.rate else "all at once"
    print(f"ReviewOpened published      {len(opened)} ({len(opened) / (stored - started):.0f}/s end to end, {mode})")
    print(f"all counted by follow-up    {counted - started:.2f} s after the first produce")
    print(
        f"latency ack->ReviewOpened   p50 {quantiles[49]:.3f} s  p99 {quantiles[98]:.3f} s  max {latencies[-1]:.3f} s"
    )
    backlog = ("bounded" if bounded else "GROWING") if args.rate else "n/a (all at once: a queue by design)"
    print(f"backlog                     {backlog} (median latency: first tenth {first:.3f} s, last {last:.3f} s)")
    for name in SERVICES:
        (idle_rss, idle_cpu), (rss, cpu) = idle[name], busy[name]
        print(f"{name:<9} RSS idle {idle_rss:6.1f} MiB, after {rss:6.1f} MiB; CPU for the run {cpu - idle_cpu:6.2f} s")
    return 0 if len(opened) == args.incidents else 1


if __name__ == "__main__":
    sys.exit(main())
