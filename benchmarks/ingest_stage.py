"""Ingest against its raw baselines, in one run on the same broker and database: records/s and CPU per record.

    deploy/local/stack up && eval "$(deploy/local/stack env | sed 's/^/export /')"
    .venv/bin/python benchmarks/ingest_stage.py [--records 5000] [--repeat 3] [--batch 100]

One topic of N Alertmanager webhook records (one resolved alert each, as Alertmanager sends them during an alert
storm; the headers the webhook receiver writes) is produced once, then consumed by three variants, each with its own
consumer group, output topic and database, interleaved within each repeat so that noise spreads over all of them:

- ``raw``: a plain aiokafka loop: ``getmany`` a batch, map each record to the incident ingest would publish (JSON,
  then ``IncidentClosed``; the run refuses to start unless, for a sample, the bytes are the same as ingest's), produce
  every incident with ``acks=all`` and idempotence, wait for the acknowledgements, commit the batch's offsets.
- ``raw+dedup``: the same plus the round trips ingest makes for its de-duplication guarantee: one ``find`` with
  ``$in`` before publishing and one unordered insert after, per batch (an update only for keys still recorded).
- ``project``: ``python -m services.ingest`` as a process (real wiring, logging and metrics), its consumer only.
- ``compare`` (with ``--compare CHECKOUT``): the same from another checkout, e.g. an earlier commit
  (``git archive COMMIT | tar -x -C DIR``), for a before/after measured in the same run.

Time runs from the moment the variant's consumer group is assigned its partitions (the records are already waiting)
until all N incidents are on the output topic and the group's committed offsets cover all N records, both read
from Kafka (the database is never polled: that would load the server being measured). Each variant runs as its own
process (the raw ones are this script with ``--worker``); its CPU is that process's user + system time over the span,
so the completion detector here costs none of them. Prints each
variant's median over the repeats and one summary line with the ratios project/raw and project/raw+dedup.

The MongoDB-compatible test server's cost per write grows with what ran before it: restart it before a run whose
figures you keep, or compare only ratios from one run. Topics and databases are named after the run and deleted at
the end.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from schemas import IncidentClosed, Severity, TimelineEntry

REPO = Path(__file__).resolve().parent.parent
DEDUP_WINDOW = timedelta(days=1)
POLL_SECONDS = 0.02


def alertmanager_record(number: int, run: str) -> bytes:
    """An Alertmanager v4 group notification with one resolved alert, like tests/fixtures/alertmanager/."""
    fingerprint = f"{run}{number:08x}"
    labels = {
        "alertname": f"ProbeFailure{number % 13}",
        "instance": f"https://server-{number % 50}.example.org",
        "job": "http_checks",
        "service": f"service-{number % 20}",
        "severity": ("critical", "warning", "page", "info")[number % 4],
        "team": f"team-{number % 5}",
    }
    return json.dumps(
        {
            "receiver": "incident-lessons",
            "status": "resolved",
            "alerts": [
                {
                    "status": "resolved",
                    "labels": labels,
                    "annotations": {
                        "description": f"Instance {labels['instance']} has been down for over 5m. Job: http_checks",
                        "summary": f"BlackBox Probe Failure: {labels['instance']}",
                    },
                    "startsAt": "2026-11-28T08:00:00.000Z",
                    "endsAt": "2026-11-28T08:21:15.828Z",
                    "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0",
                    "fingerprint": fingerprint,
                }
            ],
            "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example.org:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def record_headers(number: int) -> list[tuple[str, bytes]]:
    return [
        ("source", b"alertmanager"),
        ("content-type", b"application/json"),
        ("delivery-id", f"bench-{number}".encode()),
        ("received-at", b"2026-11-28T08:21:16+00:00"),
    ]


async def prepare(bootstrap: str, topic: str, partitions: int, count: int, run: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, alertmanager_record(n, run), key=str(n).encode(), headers=record_headers(n))
            for n in range(count)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# --- the raw baselines ------------------------------------------------------------------------------------------


# What a hand-written consumer would map these alerts with: the same incident as ingest publishes, without the
# generality (other sources, lenient reading, bounds, configurable tables). ``same_output`` checks it is the same.
RAW_SEVERITIES = {
    "critical": Severity.CRITICAL,
    "warning": Severity.MEDIUM,
    "page": Severity.HIGH,
    "info": Severity.LOW,
}
RAW_LABEL_ORDER = ("alertname", "severity", "service", "job", "team", "instance", "namespace", "cluster")


def validate(record: ConsumerRecord[Any, Any]) -> list[IncidentClosed]:
    """The minimum a consumer must do: parse the JSON and build a valid ``IncidentClosed`` per resolved alert."""
    payload = json.loads(record.value)
    incidents = []
    for alert in payload["alerts"]:
        if alert.get("status") != "resolved":
            continue
        labels, annotations = alert["labels"], alert["annotations"]
        starts_at = datetime.fromisoformat(alert["startsAt"]).astimezone(UTC)
        resolved_at = datetime.fromisoformat(alert["endsAt"]).astimezone(UTC)
        title = annotations.get("summary") or labels["alertname"]
        ordered = [key for key in RAW_LABEL_ORDER if key in labels] + sorted(labels.keys() - set(RAW_LABEL_ORDER))
        incidents.append(
            IncidentClosed.create(
                source="alertmanager",
                source_incident_id=f"{alert['fingerprint']}@{starts_at:%Y%m%dT%H%M%SZ}",
                resolved_at=resolved_at,
                started_at=starts_at,
                title=title,
                severity=RAW_SEVERITIES.get(labels.get("severity"), Severity.UNKNOWN),
                source_severity=labels.get("severity"),
                service=labels.get("service") or labels.get("job"),
                team=labels.get("team"),
                url=alert.get("generatorURL"),
                labels={key: labels[key] for key in ordered},
                fingerprint=alert["fingerprint"],
                timeline=(
                    TimelineEntry(at=starts_at, kind="triggered", message=title),
                    TimelineEntry(at=resolved_at, kind="resolved"),
                ),
            )
        )
    return incidents


def same_output(run: str, sample: int = 200) -> None:
    """Refuse to measure unless the raw mapping publishes exactly the bytes ingest does, for a sample of the records."""
    from services.ingest.domain.config import NormalisationConfig
    from services.ingest.domain.outcome import Accepted, RawIncident
    from services.ingest.sources import normalise

    for number in range(sample):
        body, headers = alertmanager_record(number, run), record_headers(number)
        outcome = normalise(RawIncident(body, {k: v.decode() for k, v in headers}), NormalisationConfig())
        assert isinstance(outcome, Accepted), outcome
        record = ConsumerRecord("", 0, number, 0, 0, None, body, None, 0, len(body), headers)
        raw = [incident.model_dump_json().encode() for incident in validate(record)]
        if raw != [outcome.json_of(p) for p in range(len(outcome.incidents))]:
            raise SystemExit(f"the raw mapping differs from ingest's for record {number}:\n{raw}\n{outcome.encoded}")


@dataclass
class RawLoop:
    """consume (getmany) -> validate -> produce acks=all -> await acknowledgements -> commit, one batch at a time."""

    bootstrap: str
    source_topic: str
    output_topic: str
    group_id: str
    batch: int
    dedup: AsyncCollection[dict[str, Any]] | None

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.source_topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=self.batch)
                records = [record for records in batches.values() for record in records]
                if records:
                    await self._handle(producer, records)
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(self, producer: AIOKafkaProducer, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        incidents = [incident for record in records for incident in validate(record)]
        now = datetime.now(UTC)
        if self.dedup is not None:
            keys = list({incident.incident_key for incident in incidents})
            cursor = self.dedup.find({"_id": {"$in": keys}, "published_at": {"$gte": now - DEDUP_WINDOW}}, {"_id": 1})
            seen = {doc["_id"] async for doc in cursor}
            incidents = [incident for incident in incidents if incident.incident_key not in seen]
        futures = [
            await producer.send(
                self.output_topic,
                incident.model_dump_json().encode(),
                key=incident.incident_key.encode(),
                headers=[("content-type", b"application/json"), ("event-id", str(incident.event_id).encode())],
            )
            for incident in incidents
        ]
        await asyncio.gather(*futures)
        if self.dedup is not None and incidents:
            # As ``RecentClosures.remember``: one insert, then an update only for keys still recorded.
            keys = sorted({incident.incident_key for incident in incidents})
            try:
                await self.dedup.insert_many(
                    [{"_id": key, "published_at": now, "expire_at": now + DEDUP_WINDOW} for key in keys], ordered=False
                )
            except BulkWriteError as exc:
                await self.dedup.bulk_write(
                    [
                        UpdateOne(
                            {"_id": keys[error["index"]]},
                            {"$set": {"published_at": now, "expire_at": now + DEDUP_WINDOW}},
                            upsert=True,
                        )
                        for error in exc.details.get("writeErrors", [])
                    ],
                    ordered=False,
                )


# --- measuring --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    seconds: float
    cpu_seconds: float

    def rate(self, count: int) -> float:
        return count / self.seconds


class Completion:
    """When a group is assigned its partitions, and when its work is done, both read from Kafka."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self._admin.start()
        await self._offsets.start()

    async def stop(self) -> None:
        await self._offsets.stop()
        await self._admin.close()

    async def assigned(self, group_id: str, deadline: float) -> float:
        """The moment the group is first seen stable with a member: it fetches the waiting records from then on."""
        coordinator = await self._admin.find_coordinator(group_id)
        while time.monotonic() < deadline:
            (response,) = await self._admin.describe_consumer_groups([group_id], group_coordinator_id=coordinator)
            _error, _group, state, *_rest, members = response.groups[0][:6]
            if state == "Stable" and members:
                return time.monotonic()
            await asyncio.sleep(POLL_SECONDS / 4)
        raise TimeoutError(f"group {group_id} never became stable")

    async def done(self, group_id: str, source: str, output: tuple[str, int], count: int, deadline: float) -> float:
        """When ``count`` records are on ``output`` (topic, partitions) and the group's commits cover ``source``."""
        topic, partitions = output
        outputs = [TopicPartition(topic, p) for p in range(partitions)]
        while time.monotonic() < deadline:
            produced = sum((await self._offsets.end_offsets(outputs)).values())
            if produced >= count:
                committed = await self._admin.list_consumer_group_offsets(group_id)
                if sum(o.offset for tp, o in committed.items() if tp.topic == source) >= count:
                    return time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
        raise TimeoutError(f"group {group_id} did not finish")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_output(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


@dataclass(frozen=True)
class Bench:
    bootstrap: str
    uri: str
    run: str
    source: str
    records: int
    partitions: int
    batch: int
    timeout: float

    async def raw(self, attempt: int, *, dedup: bool) -> Figures:
        name = f"{'dedup' if dedup else 'raw'}-{attempt}"
        output, group = f"bench.ingest.{self.run}.{name}", f"bench-ingest-{self.run}-{name}"
        command = [sys.executable, __file__, "--worker", self.source, output, group, str(self.batch)]
        if dedup:
            command.append(f"bench_ingest_{self.run}_{name.replace('-', '_')}")
        return await self._measure(command, output, group, {})

    async def project(self, attempt: int, checkout: Path = REPO, label: str = "project") -> Figures:
        name = f"{label}-{attempt}"
        output, group = f"bench.ingest.{self.run}.{name}", f"bench-ingest-{self.run}-{name}"
        env = {
            "MONGODB_DATABASE": f"bench_ingest_{self.run}_{name.replace('-', '_')}",
            "INGEST_RAW_TOPIC": self.source,
            "INGEST_CLOSED_TOPIC": output,
            "INGEST_GROUP_ID": group,
            "INGEST_HTTP_PORT": str(free_port()),
            "INGEST_BATCH_MAX_RECORDS": str(self.batch),
        }
        return await self._measure([sys.executable, "-m", "services.ingest"], output, group, env, checkout)

    async def _measure(
        self, command: list[str], output: str, group: str, env: dict[str, str], checkout: Path = REPO
    ) -> Figures:
        """Run one variant as its own process; time it and take its CPU from outside, reading Kafka only."""
        await create_output(self.bootstrap, output, self.partitions)
        completion = Completion(self.bootstrap)
        await completion.start()
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout), **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + self.timeout
            began = await completion.assigned(group, deadline)
            cpu = process_cpu(process.pid)
            ended = await completion.done(group, self.source, (output, self.partitions), self.records, deadline)
            used = process_cpu(process.pid) - cpu
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
            await completion.stop()
        return Figures(ended - began, used)

    async def cleanup(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topics = [t for t in await admin.list_topics() if self.run in t]
            if topics:
                await admin.delete_topics(topics)
        finally:
            await admin.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.uri)
        try:
            for database in await client.list_database_names():
                if database.startswith(f"bench_ingest_{self.run}"):
                    await client.drop_database(database)
        finally:
            await client.close()


async def measure(bench: Bench, repeat: int, compare: Path | None) -> dict[str, list[Figures]]:
    runs: dict[str, Callable[[int], Awaitable[Figures]]] = {
        "raw": lambda attempt: bench.raw(attempt, dedup=False),
        "raw+dedup": lambda attempt: bench.raw(attempt, dedup=True),
        "project": bench.project,
    }
    if compare is not None:
        runs["compare"] = lambda attempt: bench.project(attempt, compare, "compare")
    figures: dict[str, list[Figures]] = {variant: [] for variant in runs}
    await prepare(bench.bootstrap, bench.source, bench.partitions, bench.records, bench.run)
    for attempt in range(repeat):
        for variant, run in runs.items():
            result = await run(attempt)
            figures[variant].append(result)
            print(
                f"  {variant:<10} #{attempt + 1}: {result.rate(bench.records):7.0f} records/s,"
                f" {result.cpu_seconds * 1e6 / bench.records:6.0f} us CPU/record",
                flush=True,
            )
    return figures


async def worker(source: str, output: str, group: str, batch: str, database: str | None = None) -> None:
    """A raw baseline as its own process, until SIGTERM: ``--worker SOURCE OUTPUT GROUP BATCH [DATABASE]``."""
    bootstrap, uri = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URI"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    collection = None
    if database is not None:
        collection = client[database]["recent_closures"]
        await collection.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await RawLoop(bootstrap, source, output, group, int(batch), collection).run(stop)
    finally:
        await client.close()


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(*sys.argv[2:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="records per batch, for every variant")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="per variant and repeat")
    parser.add_argument(
        "--compare", type=Path, help="another checkout of the project (git archive), measured as 'compare'"
    )
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    bench = Bench(
        bootstrap=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        uri=os.environ["MONGODB_URI"],
        run=run,
        source=f"bench.ingest.{run}.raw",
        records=args.records,
        partitions=args.partitions,
        batch=args.batch,
        timeout=args.timeout,
    )
    print(
        f"run {run} at {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} cores:"
        f" {args.records} Alertmanager records, {args.partitions} partitions, batches of {args.batch},"
        f" medians of {args.repeat}"
    )
    same_output(run)
    try:
        figures = asyncio.run(measure(bench, args.repeat, args.compare))
    finally:
        asyncio.run(bench.cleanup())
    rates = {variant: statistics.median(f.rate(args.records) for f in runs) for variant, runs in figures.items()}
    for variant in figures:
        cpu = statistics.median(f.cpu_seconds for f in figures[variant]) * 1e6 / args.records
        print(f"{variant:<10} {rates[variant]:7.0f} records/s  {cpu:6.0f} us CPU/record")
    print(
        f"ingest stage: project {rates['project']:.0f}/s; project/raw {rates['project'] / rates['raw']:.2f},"
        f" project/raw+dedup {rates['project'] / rates['raw+dedup']:.2f} (goal >= 0.8)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
