"""End-to-end throughput and latency: N closed incidents through ingest, review and follow-up as processes.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/pipeline.py [--incidents 1000] [--rate 50] [--count-ops]

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
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("ingest", "review", "followup")
PARTITIONS = 3  # deploy/local's num.partitions


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


async def server_opcounters(uri: str) -> dict[str, int]:
    """The database server's own operation counters (``serverStatus``, read-only), and its requests received.

    On a shared server they include everyone's operations; the difference over a run is an upper bound.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        status = await client.admin.command("serverStatus")
    finally:
        await client.close()
    counters = {name: int(value) for name, value in status.get("opcounters", {}).items()}
    counters["requests"] = int(status.get("network", {}).get("numRequests", 0))
    return counters


async def create_topics(bootstrap: str, topics: list[str]) -> None:
    """Created before anything reads them, with the local broker's partitions: a reader never misses their start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1) for topic in topics]
        )
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


async def produce_and_wait(
    bootstrap: str, run: str, count: int, rate: float | None, timeout: float
) -> tuple[dict[str, float], dict[str, float], float]:
    waiting = asyncio.create_task(wait_for_opened(bootstrap, f"reviews.events.{run}", count, timeout))
    acked = await produce(bootstrap, f"incidents.raw.{run}", count, run, rate)
    produced = time.time()
    return acked, await waiting, produced


def followup_counted(port: int) -> float:
    """Review events follow-up tracked, from its /metrics (HTTP to the process, not a database query)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lessons_review_events_total{") and 'outcome="tracked"' in line
    )


def topics_of(run: str) -> dict[str, str]:
    """Every topic of a run: its own, so that no other run or deployment reads or writes them."""
    return {
        "raw": f"incidents.raw.{run}",
        "closed": f"incidents.closed.{run}",
        "reviews": f"reviews.events.{run}",
        "followups": f"followups.events.{run}",
    }


def service_env(run: str, ports: dict[str, int]) -> dict[str, str]:
    topics = topics_of(run)
    return {
        **os.environ,
        "MONGODB_DATABASE": database_of(run),
        "INGEST_RAW_TOPIC": topics["raw"],
        "INGEST_CLOSED_TOPIC": topics["closed"],
        "REVIEW_CLOSED_TOPIC": topics["closed"],
        "REVIEW_EVENTS_TOPIC": topics["reviews"],
        "REVIEW_FOLLOWUPS_TOPIC": topics["followups"],
        "REVIEW_FOLLOWUPS_GROUP_ID": f"review-followups-{run}",
        "FOLLOWUP_REVIEW_EVENTS_TOPIC": topics["reviews"],
        "FOLLOWUP_EVENTS_TOPIC": topics["followups"],
        **{f"{name.upper()}_GROUP_ID": f"{name}-{run}" for name in SERVICES},
        **{f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()},
    }


def database_of(run: str) -> str:
    return f"bench_{run}"


def start(name: str, env: dict[str, str], ops_file: Path | None) -> subprocess.Popen[bytes]:
    """``python -m services.<name>``, as production runs it; under the command counter when ``ops_file`` is given."""
    if ops_file is None:
        command, extra = [sys.executable, "-m", f"services.{name}"], {}
    else:
        command = [sys.executable, str(REPO / "benchmarks" / "counted_service.py"), f"services.{name}"]
        extra = {
            "BENCH_OPS_FILE": str(ops_file),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    return subprocess.Popen(
        command, cwd=REPO, env={**env, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a clean stop), then SIGKILL for any still running after 30 s: no service outlives the benchmark."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"a service on port {port} did not become ready (exit status {process.poll()})")


@dataclass
class Outcome:
    """What one pipeline run measured."""

    incidents: int
    rate: float | None
    started: float
    produced: float
    acked: dict[str, float]
    opened: dict[str, float]
    counted: float
    idle: dict[str, tuple[float, float]]
    busy: dict[str, tuple[float, float]]
    server_ops: dict[str, int]
    service_ops: dict[str, dict[str, int]] | None

    @property
    def stored(self) -> float:
        return max(self.opened.values(), default=time.time())

    @property
    def throughput(self) -> float:
        return len(self.opened) / (self.stored - self.started)


def run_pipeline(
    bootstrap: str,
    uri: str,
    run: str,
    incidents: int,
    *,
    rate: float | None,
    timeout: float,
    count_ops: bool = False,
) -> Outcome:
    """Start the services on the run's topics and database (which may be seeded already), produce, measure, stop.

    Drops the run's database and deletes its topics at the end.
    """
    ports = {name: free_port() for name in SERVICES}
    env = service_env(run, ports)
    topics = list(topics_of(run).values())
    asyncio.run(create_topics(bootstrap, topics))
    with tempfile.TemporaryDirectory(prefix=f"bench-{run}-") as scratch:
        ops_files = {name: Path(scratch) / f"{name}.json" if count_ops else None for name in SERVICES}
        processes = {name: start(name, env, ops_files[name]) for name in SERVICES}
        try:
            for name, port in ports.items():
                wait_ready(port, processes[name])
            idle = {name: proc_figures(process.pid) for name, process in processes.items()}
            before = asyncio.run(server_opcounters(uri))
            started = time.time()
            acked, opened, produced = asyncio.run(produce_and_wait(bootstrap, run, incidents, rate, timeout))
            stored = max(opened.values(), default=time.time())
            # Follow-up's own count, from its /metrics: the database is not polled.
            while followup_counted(ports["followup"]) < len(opened) and time.time() - stored < 60:
                time.sleep(0.2)
            counted = time.time()
            after = asyncio.run(server_opcounters(uri))
            busy = {name: proc_figures(process.pid) for name, process in processes.items()}
        finally:
            stop(processes.values())
            asyncio.run(drop_database(uri, database_of(run)))
            asyncio.run(delete_topics(bootstrap, topics))
        service_ops = (
            {name: json.loads(path.read_text()) for name, path in ops_files.items() if path and path.exists()}
            if count_ops
            else None
        )
    return Outcome(
        incidents=incidents,
        rate=rate,
        started=started,
        produced=produced,
        acked=acked,
        opened=opened,
        counted=counted,
        idle=idle,
        busy=busy,
        server_ops={name: after[name] - before.get(name, 0) for name in after},
        service_ops=service_ops,
    )


# Counted but not a database operation of the pipeline's work: connection and session housekeeping.
HOUSEKEEPING = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo"})


def ops_per_incident(counts: dict[str, int], incidents: int) -> tuple[float, str]:
    """Operations per incident (housekeeping left out) and the largest kinds, e.g. ``insert 1.02, find 0.51``."""
    work = {name: count for name, count in counts.items() if name not in HOUSEKEEPING}
    largest = sorted(work.items(), key=lambda item: -item[1])[:4]
    return sum(work.values()) / incidents, ", ".join(f"{name} {count / incidents:.2f}" for name, count in largest)


def report(outcome: Outcome, run: str) -> None:
    opened, acked = outcome.opened, outcome.acked
    latencies = sorted(opened[key] - acked[key] for key in opened if key in acked)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    # Bounded backlog: the latency of the last tenth is no worse than twice that of the first tenth (plus slack).
    by_produce = [opened[key] - acked[key] for key in sorted(acked, key=acked.__getitem__) if key in opened]
    tenth = max(1, len(by_produce) // 10)
    first, last = statistics.median(by_produce[:tenth] or [0.0]), statistics.median(by_produce[-tenth:] or [0.0])
    bounded = last <= 2 * first + 0.5
    print(f"run {run} at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores (a shared machine: figures noisy)")
    print(f"incidents produced          {outcome.incidents} in {outcome.produced - outcome.started:.2f} s")
    mode = f"open loop at {outcome.rate:g}/s" if outcome.rate else "all at once"
    print(f"ReviewOpened published      {len(opened)} ({outcome.throughput:.0f}/s end to end, {mode})")
    print(f"all counted by follow-up    {outcome.counted - outcome.started:.2f} s after the first produce")
    if latencies:
        print(
            f"latency ack->ReviewOpened   p50 {quantiles[49]:.3f} s  p99 {quantiles[98]:.3f} s  "
            f"max {latencies[-1]:.3f} s"
        )
    backlog = ("bounded" if bounded else "GROWING") if outcome.rate else "n/a (all at once: a queue by design)"
    print(f"backlog                     {backlog} (median latency: first tenth {first:.3f} s, last {last:.3f} s)")
    for name in SERVICES:
        (idle_rss, idle_cpu), (rss, cpu) = outcome.idle[name], outcome.busy[name]
        print(
            f"{name:<9} RSS idle {idle_rss:6.1f} MiB, after {rss:6.1f} MiB (goal < 150); "
            f"CPU for the run {cpu - idle_cpu:6.2f} s"
        )
    requests = outcome.server_ops.pop("requests", 0)
    server, kinds = ops_per_incident(outcome.server_ops, outcome.incidents)
    print(
        f"database ops per incident   {server:.2f} by the server's opcounters ({kinds}; the whole shared server: "
        f"an upper bound), {requests / outcome.incidents:.2f} requests"
    )
    if outcome.service_ops is not None:
        total = 0.0
        for name, counts in outcome.service_ops.items():
            per, kinds = ops_per_incident(counts, outcome.incidents)
            total += per
            print(f"{name:<9} {per:5.2f} commands per incident ({kinds})")
        print(f"database commands per incident, counted in the services: {total:.2f} (goal <= 3)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--rate", type=float, help="open loop: produce this many incidents per second (default: at once)"
    )
    parser.add_argument(
        "--count-ops", action="store_true", help="count each service's MongoDB commands (benchmarks/counted_service.py)"
    )
    args = parser.parse_args()
    bootstrap, uri = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URI"]
    run = uuid.uuid4().hex[:8]
    outcome = run_pipeline(
        bootstrap, uri, run, args.incidents, rate=args.rate, timeout=args.timeout, count_ops=args.count_ops
    )
    report(outcome, run)
    return 0 if len(outcome.opened) == args.incidents else 1


if __name__ == "__main__":
    sys.exit(main())
