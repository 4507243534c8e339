"""The main job's second half: feed the running services with sample incidents and show what became of them.

Run by ``scripts/demo`` once the local stack and the four services are up. Every file under
``deploy/local/samples/<source>/`` is produced to ``incidents.raw`` with its ``source`` header, as a tool producing
to Kafka would; the files under ``deploy/local/webhook-samples/pagerduty/`` are posted to the webhook receiver,
signed with the secret ``scripts/demo`` generated for this run, and once more with a forged signature. Then the
reviews opened, the records dead-lettered, the follow-up events, the messages notify mailed (to the SMTP catcher's
Maildir, ``DEMO_MAILDIR``) and the metrics are shown.

When the stack runs Prometheus, one review also gets two done action items with metric verifications (through the
review API, with the run's editor or admin token from ``REVIEW_API_TOKENS``) and is closed: follow-up judges one
effective and one not (on the short timings ``scripts/demo`` gives it), review records both verdicts and reopens the
review, and the verdicts are shown with their evidence.
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from schemas import ActionItemPriority
from services.followup.settings import FollowupSettings
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


# Verified remediation: two done action items whose metric verifications Prometheus answers from the services' own
# scrapes (the stack's jobs are lessons-ingest, lessons-review, lessons-followup).
DEMO_REVIEW = "generic:INC-1001"  # the checkout incident: critical, so approval needs a measurable verification
WORKABLE = ("open", "in_review", "approved", "published")  # statuses the demo can walk to closed
WORKFLOW = ("open", "in_review", "approved", "published", "closed")
FINAL_VERDICTS = ("effective", "not_effective")


@dataclass(frozen=True)
class Remediation:
    title: str
    query: str
    comparison: str
    threshold: float
    expected: str  # the verdict the demo shows

    def plan(self) -> dict[str, Any]:
        return {"method": "metric", "query": self.query, "comparison": self.comparison, "threshold": self.threshold}


REMEDIATIONS = (
    # Review runs throughout the window, so Prometheus' scrapes of it succeed: holds.
    Remediation(
        "Keep the review API up through deploys",
        'max_over_time(up{job="lessons-review"}[$window])',
        ">=",
        1,
        "effective",
    ),
    # The demo itself sends a truncated payload that ingest dead-letters (counted since ingest started): fails.
    Remediation(
        "Stop tools sending malformed payloads",
        'sum(max_over_time(lessons_dlq_messages_total{job="lessons-ingest"}[$window]))',
        "<",
        1,
        "not_effective",
    ),
)


@dataclass(frozen=True)
class Verifying:
    review_id: str
    items: dict[str, Remediation]  # action item id -> what it promised
    done_at: float  # time.monotonic() when the items were done


def writer_token() -> str | None:
    """An editor or admin token from REVIEW_API_TOKENS (scripts/demo makes an admin one for the run)."""
    try:
        tokens = json.loads(os.environ.get("REVIEW_API_TOKENS") or "{}")
    except ValueError:
        return None
    if not isinstance(tokens, dict):
        return None
    for token, client in tokens.items():
        if isinstance(client, dict) and client.get("role") in ("editor", "admin"):
            return str(token)
    return None


def prometheus_value(prometheus: str, expression: str) -> float | None:
    """The expression's one value now, or None (no answer, nothing selected, several series)."""
    try:
        answer = httpx.post(f"{prometheus}/api/v1/query", data={"query": expression}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    result = answer.get("data", {}).get("result", []) if isinstance(answer, dict) else []
    return float(result[0]["value"][1]) if len(result) == 1 else None


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def start_verification(client: httpx.Client, reviews: list[dict[str, Any]], prometheus: str) -> Verifying | None:
    """Add the two done items to one review and close it, so that a not_effective verdict visibly reopens it."""
    workable = sorted(
        (review for review in reviews if review["status"] in WORKABLE),
        key=lambda review: (review["incident_key"] != DEMO_REVIEW, review["incident"]["severity"] != "critical"),
    )
    if not workable:
        print("  no review of this run can still be closed (earlier runs closed them): skipped")
        print("  (start from fresh data: deploy/local/stack down --purge)")
        return None
    review = checked(client.get(f"/reviews/{workable[0]['id']}"))
    timing = FollowupSettings().verification_policy().timings[ActionItemPriority.HIGH]
    window = f"{timing.window.total_seconds():.0f}s"
    # Wait (bounded) for Prometheus' first scrapes on a fresh stack, so that each item has a baseline when done.
    asked = time.monotonic()
    now: dict[str, float | None] = {}

    def scraped() -> bool:
        now.update({r.title: prometheus_value(prometheus, r.query.replace("$window", window)) for r in REMEDIATIONS})
        return None not in now.values()

    scraped_in_time = wait_until(scraped, timeout=20)
    values = " and ".join(_number(value) for value in now.values())
    waited = f"waited {time.monotonic() - asked:.0f} s for its scrapes"
    if scraped_in_time:
        print(f"  Prometheus answers both expressions already ({values} now; {waited})")
    else:
        print(f"  Prometheus does not answer both expressions yet ({values}; {waited}): a baseline may be missing")
    if review["status"] in ("open", "in_review"):
        review = checked(
            client.patch(
                f"/reviews/{review['id']}",
                json={
                    "version": review["version"],
                    "owner": "pat",
                    "analysis": {"what_went_wrong": ["A release lowered the connection pool limit"]},
                    "contributing_factors": [
                        {"category": "technology", "description": "The pool size came from a stale default"}
                    ],
                    "recommendations": ["Verify every remediation against the metrics"],
                },
            )
        )
    items: dict[str, Remediation] = {}
    for remediation in REMEDIATIONS:
        before = {item["id"] for item in review["action_items"]}
        review = checked(
            client.post(
                f"/reviews/{review['id']}/action-items",
                json={
                    "version": review["version"],
                    "title": remediation.title,
                    "owner": "pat",
                    "priority": ActionItemPriority.HIGH.value,
                    "category": "monitoring_alerting",
                    "status": "done",
                    "verification": remediation.plan(),
                },
            )
        )
        (item_id,) = {item["id"] for item in review["action_items"]} - before
        items[item_id] = remediation
    done_at = time.monotonic()
    moves = [review["status"]]
    for to in WORKFLOW[WORKFLOW.index(review["status"]) + 1 :]:
        review = checked(
            client.post(f"/reviews/{review['id']}/transitions", json={"version": review["version"], "to": to})
        )
        moves.append(to)
    print(f"  review of {review['incident_key']} ({review['incident']['severity']}, {review['id']}):")
    for item_id, remediation in items.items():
        print(f"    {item_id} added done: {remediation.title}")
        print(f"        verify: {remediation.query} {remediation.comparison} {remediation.threshold:g}")
        print(f"        (the demo expects {remediation.expected})")
    print(f"    moved {' -> '.join(moves)}")
    print(
        f"  follow-up judges each item with Prometheus after {timing.stabilisation.total_seconds():g} s to stabilise"
        f" and a {timing.window.total_seconds():g} s window (the demo's FOLLOWUP_VERIFICATION_TIMINGS); verdicts below"
    )
    return Verifying(review["id"], items, done_at)


def _when(moment: str | None) -> str:
    return "-" if moment is None else datetime.fromisoformat(moment).strftime("%H:%M:%S")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def show_verdicts(client: httpx.Client, verifying: Verifying, timeout: float) -> bool:
    """Wait (bounded) until review recorded a final verdict on both items, then show them with their evidence."""

    def current() -> dict[str, Any]:
        return checked(client.get(f"/reviews/{verifying.review_id}"))

    def final(review: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            item["id"]: item["verification_result"]
            for item in review["action_items"]
            if item["id"] in verifying.items
            and (item.get("verification_result") or {}).get("verdict") in FINAL_VERDICTS
        }

    deadline = verifying.done_at + timeout
    review = current()
    while len(final(review)) < len(verifying.items) and time.monotonic() < deadline:
        time.sleep(1)
        review = current()
    results = final(review)
    waited = time.monotonic() - verifying.done_at
    count = f"{len(results)} of {len(verifying.items)}"
    print(f"\nRemediation verdicts review recorded ({count}, {waited:.0f} s after the items were done):")
    expected = True
    for item_id, remediation in verifying.items.items():
        result = results.get(item_id)
        if result is None:
            expected = False
            attempts = checked(client.get(f"/reviews/{verifying.review_id}/followup")).get("verification_attempts", [])
            last = [attempt for attempt in attempts if attempt["action_item_id"] == item_id][-1:]
            why = f"last attempt {last[0]['verdict']}: {last[0]['detail']}" if last else "no attempt reported yet"
            print(f"  {item_id} {remediation.title}: no final verdict within {timeout:.0f} s ({why})")
            continue
        expected &= result["verdict"] == remediation.expected
        show_evidence(item_id, remediation, result)
    show_reopening(review, set(verifying.items))
    if not expected:
        followup_view = f"{client.base_url}/reviews/{verifying.review_id}/followup"
        print(f"  (not what the demo expected; see follow-up's log and {followup_view})")
    return expected


def show_evidence(item_id: str, remediation: Remediation, result: dict[str, Any]) -> None:
    evidence = result["evidence"]
    asked = f"{evidence.get('expression')} {evidence.get('comparison')} {_number(evidence.get('threshold'))}"
    judged = f"{evidence['judged_by']} at {_when(evidence['judged_at'])} UTC, attempt {result.get('attempt')}"
    print(f"  {item_id} {remediation.title}: {result['verdict'].upper()}")
    print(f"      expression  {asked}")
    print(f"      window      {_when(evidence.get('window_start'))} -> {_when(evidence.get('window_end'))} UTC")
    print(f"      baseline    {_number(evidence.get('baseline'))} (when done)")
    print(f"      observed    {_number(evidence.get('observed'))} (at the window's end)")
    print(f"      judged by   {judged}; recorded by {result['recorded_by']} at {_when(result['recorded_at'])} UTC")
    print(f"      detail      {evidence.get('detail')}")


def show_reopening(review: dict[str, Any], item_ids: set[str]) -> None:
    reopening = review.get("reopening")
    # An earlier run's reopening stays on the record, settled when that run closed the review again.
    if not reopening or reopening.get("settled_at") or not item_ids & set(reopening["action_item_ids"]):
        print(f"  review of {review['incident_key']} not reopened (status {review['status']})")
        return
    history = review.get("status_history") or []
    moved = history[-1] if history and history[-1]["from_status"] == "closed" else None
    how = f"{moved['from_status']} -> {moved['to_status']}" if moved else f"now {review['status']}"
    print(f"  review of {review['incident_key']} REOPENED ({how}): {reopening['reason']}")
    if reopening.get("new_action_item_required"):
        print("      it needs a new action item before it can be closed again")


def begin_verification(review: str, reviews: list[dict[str, Any]]) -> tuple[httpx.Client, Verifying | None]:
    token = writer_token()
    writer = httpx.Client(base_url=review, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    print("\nVerified remediation (two done action items with metric verifications, then the review closed):")
    prometheus = os.environ.get("FOLLOWUP_PROMETHEUS_URL", "").rstrip("/")
    if not prometheus:
        print("  skipped: no Prometheus (install Debian's prometheus; the stack then runs it)")
        return writer, None
    if token is None:
        print("  skipped: REVIEW_API_TOKENS holds no editor or admin token")
        return writer, None
    return writer, start_verification(writer, reviews, prometheus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument(
        "--verification-timeout", type=float, default=90.0, help="seconds after the items are done to await verdicts"
    )
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
    writer, verifying = begin_verification(review, reviews)
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
    verified = show_verdicts(writer, verifying, args.verification_timeout) if verifying is not None else True
    notify = f"http://127.0.0.1:{os.environ.get('NOTIFY_HTTP_PORT', '8084')}"
    for name, url in (("ingest", ingest), ("review", review), ("follow-up", followup), ("notify", notify)):
        print(f"\n{name} metrics ({url}/metrics, lessons_* only):")
        print("\n".join(lessons_metrics(url)) or "  (none yet)")
    print(f"\nReview API: {review}/docs   one record: {review}/reviews/<id>")
    return 0 if len(reviews) == len(keys) and verified else 1


if __name__ == "__main__":
    sys.exit(main())
