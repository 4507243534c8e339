"""End-to-end throughput and latency: N closed incidents through ingest, review and follow-up as processes.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/pipeline.py [--incidents 1000]

Produces N generic incidents to a fresh ``incidents.raw`` topic, then measures how long until every review is in
MongoDB and follow-up has counted them all; prints throughput, latency percentiles (produce acknowledged -> review
stored) and each service's resident memory and CPU time. Uses its own topics and database; cleans the database up.
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
from aiokafka import AIOKafkaProducer
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


async def produce(bootstrap: str, topic: str, count: int, run: str) -> dict[str, float]:
    """Produce all incidents; returns each incident key's acknowledgement time (epoch seconds)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    acked: dict[str, float] = {}
    try:
        futures = []
        for number in range(count):
            future = await producer.send(
                topic, incident(number, run), key=str(number).encode(), headers=[("source", b"generic")]
            )
            futures.append((f"generic:{run}-{number}", future))
        for key, future in futures:
            await future
            acked[key] = time.time()
    finally:
        await producer.stop()
    return acked


async def wait_for_reviews(uri: str, database: str, count: int, timeout: float) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await client[database].reviews.count_documents({}) >= count:
                break
            await asyncio.sleep(0.2)
        return await client[database].reviews.find({}, {"incident_key": 1, "created_at": 1}).to_list()
    finally:
        await client.drop_database(database)
        await client.close()


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
        acked = asyncio.run(produce(bootstrap, f"incidents.raw.{run}", args.incidents, run))
        produced = time.time()
        reviews = asyncio.run(wait_for_reviews(uri, f"bench_{run}", args.incidents, args.timeout))
        stored = time.time()
        while followup_counted(ports["followup"]) < len(reviews) and time.time() - stored < 60:
            time.sleep(0.2)
        counted = time.time()
        busy = {name: proc_figures(process.pid) for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=30)

    latencies = sorted(
        (review["created_at"].timestamp() - acked[review["incident_key"]])
        for review in reviews
        if review["incident_key"] in acked
    )
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(f"run {run} at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores")
    print(f"incidents produced          {args.incidents} in {produced - started:.2f} s")
    print(f"reviews stored              {len(reviews)} ({len(reviews) / (stored - started):.0f}/s end to end)")
    print(f"all counted by follow-up    {counted - started:.2f} s after the first produce")
    print(
        f"latency ack->review stored  p50 {quantiles[49]:.3f} s  p95 {quantiles[94]:.3f} s  max {latencies[-1]:.3f} s"
    )
    for name in SERVICES:
        (idle_rss, idle_cpu), (rss, cpu) = idle[name], busy[name]
        print(f"{name:<9} RSS idle {idle_rss:6.1f} MiB, after {rss:6.1f} MiB; CPU for the run {cpu - idle_cpu:6.2f} s")
    return 0 if len(reviews) == args.incidents else 1


if __name__ == "__main__":
    sys.exit(main())
