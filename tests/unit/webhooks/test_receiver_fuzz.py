"""Property: whatever arrives, the receiver answers with one of its statuses and never raises.

Random sources (known, unknown, odd), bodies (bytes, JSON, fixtures, oversize, chunked), content types and credential
headers (missing, random, and valid ones computed for the drawn body, so the publish path is reached too), against a
publisher that acknowledges, fails or hangs. ``ASGITransport`` re-raises any exception the app lets escape, so an
unhandled exception fails the test. A 5xx other than the deliberate 503 fails it too, and so does a record published
for anything but a 202, or a 202 whose record is not the exact body sent.
"""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas import SOURCES
from services.ingest.webhooks import WebhookSettings
from tests.support.fixtures import FIXTURES
from tests.unit.webhooks.harness import NOW, FakePublisher, receiver
from tests.unit.webhooks.signing import basic, grafana_signature, new_svix_secret, pagerduty_signature, svix_headers

PD_SECRET, GRAFANA_SECRET, INCIDENTIO_SECRET = "pd", "gf", new_svix_secret()
LIMIT = 16 * 1024
SETTINGS = WebhookSettings(
    pagerduty_secrets=[PD_SECRET],
    grafana_secrets=[GRAFANA_SECRET],
    incidentio_secrets=[INCIDENTIO_SECRET],
    bearer_tokens={"opsgenie": ["tok"], "datadog": ["tok"]},
    basic_auth={"zabbix": ["zbx:pw"], "alertmanager": ["am:pw"]},
    allow_unauthenticated=["generic", "cloudevents"],
    max_body_bytes=LIMIT,
    publish_timeout_seconds=0.01,
)
STATUSES = {202, 400, 401, 403, 404, 413, 415, 503}
FIXTURE_BODIES = sorted(path.read_bytes() for path in FIXTURES.glob("*/*.json") if path.stat().st_size <= LIMIT)
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
HEADER_BYTES = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b""))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(FIXTURE_BODIES),
    st.integers(LIMIT - 2, LIMIT + 2).map(lambda n: b'"' + b"x" * (n - 2) + b'"'),
)
KNOWN = st.sampled_from(SOURCES)
# Mostly known sources (an unknown one stops at 404), some odd names and random text.
sources = st.integers(0, 9).flatmap(
    lambda n: KNOWN if n < 8 else st.sampled_from(["PagerDuty", "nagios", "", "..", "%00"]) | PRINTABLE
)
JSON_TYPES = st.sampled_from(["application/json", "application/cloudevents+json", "application/json; charset=utf-8"])
content_types = st.one_of(JSON_TYPES, JSON_TYPES, st.none(), st.sampled_from(["text/plain", "json"]), PRINTABLE)
AUTHORIZATION = {
    "opsgenie": "Bearer tok",
    "datadog": "Bearer tok",
    "zabbix": basic("zbx", "pw"),
    "alertmanager": basic("am", "pw"),
}


def valid_credentials(source: str, body: bytes, ts: str) -> dict[str, str]:
    """Every header that makes this body from this source authentic (the others are harmless extras)."""
    headers = {
        "x-pagerduty-signature": pagerduty_signature(body, PD_SECRET),
        "x-webhook-id": "PD-1",
        "X-Grafana-Alerting-Signature": grafana_signature(body, GRAFANA_SECRET, ts),
        "X-Grafana-Alerting-Timestamp": ts,
        **svix_headers(body, INCIDENTIO_SECRET, message_id="msg_1", timestamp=ts),
    }
    if source in AUTHORIZATION:
        headers["authorization"] = AUTHORIZATION[source]
    return headers


@st.composite
def credential_headers(draw: st.DrawFn, source: str, body: bytes, ts: str) -> dict[str, str]:
    """Valid credentials, then perhaps some of them dropped or garbled; or random ones."""
    headers = valid_credentials(source, body, ts)
    if draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(sorted(headers)), max_size=3, unique=True)):
            garbled = draw(st.none() | PRINTABLE)
            if garbled is None:
                del headers[name]
            else:
                headers[name] = garbled
    extras = st.fixed_dictionaries(
        {}, optional={"authorization": PRINTABLE, "ce-specversion": st.just("1.0") | PRINTABLE, "ce-id": PRINTABLE}
    )
    return {**draw(extras), **headers}


@st.composite
def deliveries(draw: st.DrawFn) -> dict[str, Any]:
    source, body = draw(sources), draw(bodies)
    ts = str(int((NOW + timedelta(seconds=draw(st.integers(-400, 400)))).timestamp()))
    headers: dict[str, str | bytes] = dict(draw(credential_headers(source.lower(), body, ts)))
    content_type = draw(content_types)
    if content_type is not None:
        headers["content-type"] = content_type
    if draw(st.booleans()):
        headers["x-raw"] = draw(HEADER_BYTES)
    return {
        "source": source,
        "body": body,
        "headers": headers,
        "chunked": draw(st.booleans()),
        "behaviour": draw(st.sampled_from(["ack", "ack", "fail", "hang"])),
    }


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery=deliveries())
async def test_the_receiver_never_fails_whatever_it_is_sent(delivery: dict[str, Any]) -> None:
    publisher = FakePublisher(delivery["behaviour"])
    hooks = receiver(SETTINGS, publisher)
    body: bytes = delivery["body"]
    content = chunks(body) if delivery["chunked"] else body

    response = await hooks.post(f"/webhooks/{delivery['source']}", content, delivery["headers"])
    event(f"status {response.status_code}")  # --hypothesis-show-statistics: every branch is reached

    # A drawn name with a slash can make the path one Starlette redirects (307): routing, not the receiver.
    assert response.status_code in STATUSES or (response.status_code == 307 and "/" in delivery["source"])
    if response.status_code == 503:
        assert delivery["behaviour"] != "ack"
        assert response.headers["retry-after"].isdecimal()
    if response.status_code == 202:
        assert len(publisher.records) == 1
        assert publisher.records[0].body == body
        assert len(body) <= LIMIT
        json.loads(body)
    else:
        assert publisher.records == []
