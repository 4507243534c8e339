"""A body the receiver accepts always fits in one Kafka record; one that cannot is a permanent 413, never a 503.

Bodies up to the old 1 MiB limit overflowed the producer's 1 MiB record limit once the key and headers were added,
and the tool got a 503 that no retry could fix.
"""

import uuid
from dataclasses import dataclass, field

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.webhooks import WebhookSettings
from services.ingest.webhooks.publisher import RecordTooLargeError, record_size
from tests.unit.webhooks.harness import FakePublisher, Published, receiver

OPEN = WebhookSettings(allow_unauthenticated=["generic", "cloudevents"])
JSON = {"content-type": "application/json"}


def producer_estimate(body: bytes, headers: dict[str, str], key: bytes | None) -> int:
    """What aiokafka checks against ``max_request_size``, with the headers FastStream adds to ours."""
    sent = {"correlation_id": str(uuid.uuid4()), **headers}
    # aiokafka is untyped (its estimate is Any to mypy).
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, body, [(k, v.encode()) for k, v in sent.items()])
    return size


@dataclass
class SizedPublisher:
    """Acknowledges like Kafka, and refuses like the producer a record over ``limit`` bytes."""

    limit: int
    records: list[Published] = field(default_factory=list)

    async def publish_raw(self, body: bytes, headers: dict[str, str], key: bytes | None) -> None:
        size = producer_estimate(body, headers, key)
        if size > self.limit:
            raise RecordTooLargeError(f"The message is {size} bytes when serialized")
        self.records.append(Published(body, dict(headers), key))


def json_body(size: int) -> bytes:
    body = b'{"pad": "' + b"x" * (size - 11) + b'"}'
    assert len(body) == size
    return body


async def test_a_body_at_the_default_maximum_fits_in_a_record_of_the_producers_limit() -> None:
    publisher = SizedPublisher(OPEN.record_limit_bytes)
    hooks = receiver(OPEN, publisher)  # type: ignore[arg-type]
    headers = {
        **JSON,
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/monitoring/" + "s" * 200,
        "ce-type": "com.example.incident.resolved",
    }
    response = await hooks.post("/webhooks/cloudevents", json_body(OPEN.max_body_bytes), headers)
    assert response.status_code == 202, response.text
    assert len(publisher.records) == 1
    response = await hooks.post("/webhooks/generic", json_body(OPEN.max_body_bytes + 1), JSON)
    assert response.status_code == 413


async def test_kafka_refusing_the_record_for_its_size_is_413_without_retry_after() -> None:
    hooks = receiver(OPEN, FakePublisher("too-large"))
    response = await hooks.post("/webhooks/generic", b"{}", JSON)
    assert response.status_code == 413
    assert "retry-after" not in response.headers
    assert hooks.count("generic", 413) == 1
    assert hooks.count("generic", 503) == 0


async def test_a_body_within_the_limit_whose_headers_overflow_the_record_is_413_before_publishing() -> None:
    hooks = receiver(OPEN)
    attributes = {f"ce-x{i}": "v" * 1_000 for i in range(20)}  # 20 KB of caller-chosen CloudEvent attributes
    headers = {**JSON, "ce-specversion": "1.0", **attributes}
    response = await hooks.post("/webhooks/cloudevents", json_body(OPEN.max_body_bytes), headers)
    assert response.status_code == 413
    assert "Kafka record" in response.json()["detail"]
    assert hooks.publisher.records == []


async def test_a_larger_record_limit_allows_a_larger_body() -> None:
    settings = WebhookSettings(
        allow_unauthenticated=["generic"], record_limit_bytes=2 * 1024 * 1024, max_body_bytes=2 * 1024 * 1024 - 16384
    )
    publisher = SizedPublisher(settings.record_limit_bytes)
    hooks = receiver(settings, publisher)  # type: ignore[arg-type]
    assert (await hooks.post("/webhooks/generic", json_body(settings.max_body_bytes), JSON)).status_code == 202


def test_a_body_larger_than_the_record_allows_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="INGEST_WEBHOOK_MAX_BODY_BYTES is 1048576: at most 1032192"):
        WebhookSettings(max_body_bytes=1024 * 1024)


HEADER_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)


@given(
    body=st.binary(max_size=2_000),
    key=st.none() | st.binary(max_size=300),
    headers=st.dictionaries(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40), HEADER_TEXT, max_size=8),
)
def test_the_receivers_size_is_never_below_the_producers(
    body: bytes, key: bytes | None, headers: dict[str, str]
) -> None:
    assert record_size(body, headers, key) >= producer_estimate(body, headers, key)
