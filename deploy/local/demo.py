"""The main job's second half: feed the running services with sample incidents and show what became of them.

Run by ``scripts/demo`` once the local stack and the four services are up. Every file under
``deploy/local/samples/<source>/`` is produced to ``incidents.raw`` with its ``source`` header, as a tool producing
to Kafka would; the files under ``deploy/local/webhook-samples/pagerduty/`` are posted to the webhook receiver,
signed with the secret ``scripts/demo`` generated for this run, and once more with a forged signature. Then the
reviews opened, the records dead-lettered, the follow-up events, the messages notify mailed (to the SMTP catcher's
Maildir, ``DEMO_MAILDIR``) and the metrics are shown.
"""

import argparse
import asyncio
import email
import hashlib
import hmac
import json
import mailbox
import os
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from services.ingest.domain.outcome import Accepted, RawIncident
from services.ingest.settings import IngestSettings
from services.ingest.sources import normalise

SAMPLES = Path(__file__).resolve().parent / "samples"
WEBHOOK_SAMPLES = Path(__file__).resolve().parent / "webhook-samples"


def samples(folder: Path = SAMPLES) -> list[tuple[str, Path]]:
    return sorted((path.parent.name, path) for path in folder.glob("*/*.json"))


def post_signed_pagerduty(ingest: str, found: list[tuple[str, Path]], secret: str) -> None:
    """Deliver PagerDuty samples as PagerDuty does: signed with the webhook secret; then once forged."""
    for source, path in found:
        body = path.read_bytes()
        good = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        forged = "v1=" + hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
        for label, signature in (("signed", good), ("forged signature", forged)):
            response = httpx.post(
                f"{ingest}/webhooks/{source}",
                content=body,
                headers={"Content-Type": "application/json", "X-PagerDuty-Signature": signature},
                timeout=15,
            )
            print(f"  POST /webhooks/{source} {path.name} ({label}): {response.status_code}")


def expected_incidents(found: list[tuple[str, Path]]) -> set[str]:
    """The incident keys the samples should produce, from the same pure normalisation ingest runs."""
    keys: set[str] = set()
    config = IngestSettings().normalisation()
    for source, path in found:
        outcome = normalise(RawIncident(path.read_bytes(), {"source": source}), config)
        if isinstance(outcome, Accepted):
            keys.update(incident.incident_key for incident in outcome.incidents)
    return keys


async def send(bootstrap: str, topic: str, found: list[tuple[str, Path]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for source, path in found:
            await producer.send_and_wait(
                topic,
                path.read_bytes(),
                key=path.stem.encode(),
                headers=[("source", source.encode()), ("content-type", b"application/json")],
            )
            print(f"  sent {source:<14} {path.name}")
    finally:
        await producer.stop()


async def dead_letter_reasons(bootstrap: str, topic: str, since: datetime) -> list[str]:
    """Why each record dead-lettered since ``since`` was refused (earlier runs' records stay in the topic)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        reasons = []
        while batch := await consumer.getmany(timeout_ms=1500):
            for records in batch.values():
                for record in records:
                    headers = {name: value.decode(errors="replace") for name, value in record.headers}
                    if datetime.fromisoformat(headers.get("dlq-failed-at", "1970-01-01T00:00:00+00:00")) < since:
                        continue
                    reasons.append(f"{headers.get('source', '?')}: {headers.get('dlq-reason', '?')}")
        return reasons
    finally:
        await consumer.stop()


async def followup_events(bootstrap: str, topic: str, since: datetime, settle: float) -> list[dict[str, Any]]:
    """Follow-up events published since ``since``, once none has arrived for ``settle`` seconds (or 30 s passed)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        events: list[dict[str, Any]] = []
        quiet_since, deadline = time.monotonic(), time.monotonic() + 30
        while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    # occurred_at is when the timer was due; the record's timestamp says when it was published.
                    if record.timestamp / 1000 >= since.timestamp():
                        events.append(json.loads(record.value))
                        quiet_since = time.monotonic()
        return events
    finally:
        await consumer.stop()


def mailed(maildir: Path, settle: float, timeout: float = 20.0) -> list[EmailMessage]:
    """The messages in the catcher's Maildir, once none has arrived for ``settle`` seconds (or ``timeout`` passed)."""
    seen, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
        count = len(mailbox.Maildir(maildir, create=True)) if maildir.exists() else 0
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        time.sleep(0.5)
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir)
    parsed = [email.message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.keys()]  # noqa: SIM118
    return [message for message in parsed if isinstance(message, EmailMessage)]


def show_mail(messages: list[EmailMessage], shown: int = 8) -> None:
    held = "held ones wait for quiet hours or a digest"
    print(f"\nMessages notify mailed to the SMTP catcher ({len(messages)}; {held}):")
    for message in sorted(messages, key=lambda m: (str(m["To"]), str(m["Subject"])))[:shown]:
        print(f"  To: {message['To']:<28} {message['Subject']}")
        plain = message.get_body(("plain",))
        for line in (plain.get_content() if plain is not None else "").splitlines():
            if line.startswith(("Open the review:", "Why you receive this:")):
                print(f"      {line}")
    if len(messages) > shown:
        print(f"  ... and {len(messages) - shown} more")
    if not messages:
        print("  (none: notify sends each message once, and an earlier run's were sent already)")


def wait_for_reviews(review_url: str, keys: set[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        reviews = httpx.get(f"{review_url}/reviews", params={"limit": 500}, timeout=5).json()
        if keys <= {review["incident_key"] for review in reviews} or time.monotonic() > deadline:
            return [review for review in reviews if review["incident_key"] in keys]
        time.sleep(0.5)


def lessons_metrics(url: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return [
        f"  {sample.name}{{{','.join(f'{k}={v!r}' for k, v in sorted(sample.labels.items()))}}} {sample.value:g}"
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("lessons_") and not sample.name.endswith(("_created", "_bucket")) and sample.value
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    ingest = f"http://127.0.0.1:{os.environ.get('INGEST_HTTP_PORT', '8081')}"
    review = f"http://127.0.0.1:{os.environ.get('REVIEW_HTTP_PORT', '8082')}"
    followup = f"http://127.0.0.1:{os.environ.get('FOLLOWUP_HTTP_PORT', '8083')}"
    raw_topic = IngestSettings().raw_topic

    started = datetime.now(UTC)
    found = samples()
    delivered = samples(WEBHOOK_SAMPLES)
    keys = expected_incidents(found + delivered)
    print(f"Feeding {len(found)} sample payloads to {raw_topic} ({len(keys)} distinct resolved incidents in all)")
    asyncio.run(send(bootstrap, raw_topic, found))
    secret = os.environ.get("INGEST_WEBHOOK_PAGERDUTY_SECRETS")
    if secret:
        print(f"Posting {len(delivered)} payload(s) to the webhook receiver")
        post_signed_pagerduty(ingest, delivered, secret)

    reviews = wait_for_reviews(review, keys, args.timeout)
    print(f"\nLessons-learned records ({len(reviews)} of {len(keys)} expected):")
    print(f"  {'incident':<46} {'severity':<9} {'status':<13} {'due':<11} title")
    for item in sorted(reviews, key=lambda r: r["incident_key"]):
        due = (item.get("due_at") or "-")[:10]
        print(
            f"  {item['incident_key']:<46} {item['incident']['severity']:<9} {item['status']:<13} {due:<11} "
            f"{item['incident']['title']}"
        )
    dead = asyncio.run(dead_letter_reasons(bootstrap, f"{raw_topic}.dlq", started))
    print(f"\nRecords in {raw_topic}.dlq, kept with their reason for repair and replay ({len(dead)} from this run):")
    print("\n".join(f"  {reason}" for reason in dead) or "  (none)")
    sweep = float(os.environ.get("FOLLOWUP_SWEEP_INTERVAL_SECONDS", "30"))
    fired = asyncio.run(followup_events(bootstrap, "followups.events", started, settle=sweep + 3))
    print(f"\nFollow-up events on followups.events ({len(fired)}; the vendors' sample incidents are old, so overdue):")
    for event in fired[:15]:
        extra = f" level {event['level']} -> {event.get('target')}" if event.get("type") == "Escalated" else ""
        print(f"  {event.get('type', '?'):<22} {event.get('incident_key', '?')}{extra}")
    if not fired:
        print("  (none new: each timer fires once, and an earlier run's timers have fired already)")
    if len(fired) > 15:
        print(f"  ... and {len(fired) - 15} more")
    maildir = os.environ.get("DEMO_MAILDIR")
    if maildir:
        show_mail(mailed(Path(maildir), settle=3.0))
    notify = f"http://127.0.0.1:{os.environ.get('NOTIFY_HTTP_PORT', '8084')}"
    for name, url in (("ingest", ingest), ("review", review), ("follow-up", followup), ("notify", notify)):
        print(f"\n{name} metrics ({url}/metrics, lessons_* only):")
        print("\n".join(lessons_metrics(url)) or "  (none yet)")
    print(f"\nReview API: {review}/docs   one record: {review}/reviews/<id>")
    return 0 if len(reviews) == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
