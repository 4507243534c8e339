"""``POST /webhooks/{source}`` over ASGI with a fake publisher: what is published, what is refused, and how."""

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest

from schemas import SOURCES
from services.ingest.webhooks import WebhookSettings
from tests.support.fixtures import fixture
from tests.unit.webhooks.harness import NOW, CountedBody, FakePublisher, Published, Receiver, receiver
from tests.unit.webhooks.signing import (
    basic,
    grafana_signature,
    new_svix_secret,
    pagerduty_signature,
    svix_headers,
)

PD_SECRET = "pd-secret-current"
PD_OLD_SECRET = "pd-secret-retired"
GRAFANA_SECRET = "grafana-hmac-secret"
INCIDENTIO_SECRET = new_svix_secret()
OPSGENIE_TOKEN = "opsgenie-token-1"
ZABBIX_BASIC = "zabbix:correct horse:battery"
JSON = {"content-type": "application/json"}
LIMIT = 64 * 1024


def settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "pagerduty_secrets": [PD_SECRET, PD_OLD_SECRET],
        "grafana_secrets": [GRAFANA_SECRET],
        "incidentio_secrets": [INCIDENTIO_SECRET],
        "bearer_tokens": {"opsgenie": [OPSGENIE_TOKEN], "alertmanager": ["am-token"]},
        "basic_auth": {"zabbix": [ZABBIX_BASIC]},
        "max_body_bytes": LIMIT,
        "publish_timeout_seconds": 0.05,
        "retry_after_seconds": 17,
    }
    return WebhookSettings(**(values | overrides))


@pytest.fixture
def hooks() -> Receiver:
    return receiver(settings())


def pd_headers(body: bytes, *secrets: str, delivery: str = "0f6a3c4e-9d1a-4a53-8a39-6d8f3a2b7e10") -> dict[str, str]:
    return {**JSON, "x-pagerduty-signature": pagerduty_signature(body, *secrets), "x-webhook-id": delivery}


# --- accepted ---------------------------------------------------------------------------------------------------------


async def test_signed_pagerduty_webhook_is_published_unchanged_with_its_headers(hooks: Receiver) -> None:
    body = fixture("pagerduty", "resolved.json")
    response = await hooks.post("/webhooks/pagerduty", body, pd_headers(body, PD_SECRET, delivery="wh-7"))

    assert response.status_code == 202
    assert response.json() == {"delivery_id": "wh-7"}
    assert hooks.publisher.records == [
        Published(
            body=body,
            headers={
                "source": "pagerduty",
                "content-type": "application/json",
                "delivery-id": "wh-7",
                "received-at": "2026-11-28T09:00:00.123456+00:00",
            },
            key=None,
        )
    ]
    assert hooks.count("pagerduty", 202) == 1


async def test_pagerduty_during_a_rotation_on_either_side(hooks: Receiver) -> None:
    body = fixture("pagerduty", "resolved.json")
    both = await hooks.post("/webhooks/pagerduty", body, pd_headers(body, "pagerduty-new-secret", PD_SECRET))
    old_only = await hooks.post("/webhooks/pagerduty", body, pd_headers(body, PD_OLD_SECRET))
    assert (both.status_code, old_only.status_code) == (202, 202)


async def test_signed_incidentio_webhook_uses_the_svix_message_id_as_delivery_id(hooks: Receiver) -> None:
    body = fixture("incidentio", "incident_updated_closed.json")
    ts = str(int((NOW - timedelta(seconds=20)).timestamp()))
    headers = {**JSON, **svix_headers(body, INCIDENTIO_SECRET, message_id="msg_2Jd8", timestamp=ts)}
    response = await hooks.post("/webhooks/incidentio", body, headers)
    assert response.status_code == 202
    (record,) = hooks.publisher.records
    assert record.body == body
    assert record.headers["delivery-id"] == "msg_2Jd8"
    assert record.headers["source"] == "incidentio"


async def test_incidentio_also_accepts_svix_prefixed_headers(hooks: Receiver) -> None:
    body = b'{"event_type": "public_incident.incident_updated_v2"}'
    ts = str(int(NOW.timestamp()))
    headers = {
        k.replace("webhook-", "svix-"): v
        for k, v in svix_headers(body, INCIDENTIO_SECRET, message_id="m", timestamp=ts).items()
    }
    assert (await hooks.post("/webhooks/incidentio", body, {**JSON, **headers})).status_code == 202


async def test_grafana_signed_with_and_without_timestamp(hooks: Receiver) -> None:
    body = fixture("grafana", "resolved_single.json")
    plain = await hooks.post(
        "/webhooks/grafana", body, {**JSON, "X-Grafana-Alerting-Signature": grafana_signature(body, GRAFANA_SECRET)}
    )
    ts = str(int(NOW.timestamp()))
    stamped = await hooks.post(
        "/webhooks/grafana",
        body,
        {
            **JSON,
            "X-Grafana-Alerting-Signature": grafana_signature(body, GRAFANA_SECRET, ts),
            "X-Grafana-Alerting-Timestamp": ts,
        },
    )
    assert (plain.status_code, stamped.status_code) == (202, 202)
    # Grafana sends no delivery id: each delivery gets a fresh uuid4.
    ids = [uuid.UUID(r.headers["delivery-id"]) for r in hooks.publisher.records]
    assert len(set(ids)) == 2
    assert all(i.version == 4 for i in ids)


async def test_grafana_header_names_are_configurable() -> None:
    hooks = receiver(settings(grafana_signature_header="X-Sig", grafana_timestamp_header="X-Sig-Time"))
    body = b'{"alerts": []}'
    ts = str(int(NOW.timestamp()))
    headers = {**JSON, "x-sig": grafana_signature(body, GRAFANA_SECRET, ts), "x-sig-time": ts}
    assert (await hooks.post("/webhooks/grafana", body, headers)).status_code == 202
    default_name = {**JSON, "X-Grafana-Alerting-Signature": grafana_signature(body, GRAFANA_SECRET)}
    assert (await hooks.post("/webhooks/grafana", body, default_name)).status_code == 401


async def test_bearer_and_basic_for_tools_that_cannot_sign(hooks: Receiver) -> None:
    body = fixture("opsgenie", "close.json")
    opsgenie = await hooks.post("/webhooks/opsgenie", body, {**JSON, "Authorization": f"Bearer {OPSGENIE_TOKEN}"})
    user, _, password = ZABBIX_BASIC.partition(":")
    zabbix = await hooks.post(
        "/webhooks/zabbix", fixture("zabbix", "recovery.json"), {**JSON, "Authorization": basic(user, password)}
    )
    assert (opsgenie.status_code, zabbix.status_code) == (202, 202)
    assert [r.headers["source"] for r in hooks.publisher.records] == ["opsgenie", "zabbix"]


async def test_every_configured_check_must_pass() -> None:
    """Grafana may sign and send basic auth at once: both are then required."""
    hooks = receiver(settings(basic_auth={"grafana": ["grafana:pw"]}))
    body = b'{"alerts": []}'
    signed = {**JSON, "X-Grafana-Alerting-Signature": grafana_signature(body, GRAFANA_SECRET)}
    assert (await hooks.post("/webhooks/grafana", body, signed)).status_code == 401
    with_wrong_basic = {**signed, "Authorization": basic("grafana", "nope")}
    assert (await hooks.post("/webhooks/grafana", body, with_wrong_basic)).status_code == 403
    both = {**signed, "Authorization": basic("grafana", "pw")}
    assert (await hooks.post("/webhooks/grafana", body, both)).status_code == 202


async def test_a_source_opened_for_local_development_needs_no_credential() -> None:
    hooks = receiver(settings(allow_unauthenticated=["generic"]))
    body = fixture("generic", "resolved.json")
    assert (await hooks.post("/webhooks/generic", body, JSON)).status_code == 202
    assert (await hooks.post("/webhooks/cloudevents", body, JSON)).status_code == 401


async def test_configured_credentials_win_over_the_development_opening() -> None:
    hooks = receiver(settings(allow_unauthenticated=["opsgenie"]))
    assert (await hooks.post("/webhooks/opsgenie", b"{}", JSON)).status_code == 401


async def test_content_types_accepted_and_kept(hooks: Receiver) -> None:
    opened = receiver(settings(allow_unauthenticated=["generic", "cloudevents"]))
    for content_type, kept in [
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("application/cloudevents+json", "application/cloudevents+json"),
        ("Application/JSON", "Application/JSON"),
        (None, "application/json"),  # no Content-Type at all: accepted, recorded as what it was checked to be
    ]:
        headers = {} if content_type is None else {"content-type": content_type}
        response = await opened.post("/webhooks/cloudevents", b'{"specversion": "1.0"}', headers)
        assert response.status_code == 202, content_type
        assert opened.publisher.records[-1].headers["content-type"] == kept


async def test_binary_mode_cloudevent_attributes_become_kafka_binary_mode_headers() -> None:
    hooks = receiver(settings(allow_unauthenticated=["cloudevents"]))
    headers = {
        **JSON,
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": "/monitoring/checkout",
        "ce-type": "com.example.incident.resolved",
        "ce-subject": "INC%20204",
    }
    response = await hooks.post("/webhooks/cloudevents", fixture("generic", "resolved.json"), headers)
    assert response.status_code == 202
    published = hooks.publisher.records[0].headers
    assert published["ce_specversion"] == "1.0"
    assert published["ce_source"] == "/monitoring/checkout"
    assert published["ce_subject"] == "INC 204"  # HTTP binding values are percent-encoded; Kafka's are not
    assert published["source"] == "cloudevents"


async def test_received_at_is_utc_whatever_the_clock_zone() -> None:
    paris = timezone(timedelta(hours=1))
    hooks = receiver(
        settings(allow_unauthenticated=["generic"]), clock=lambda: datetime(2026, 11, 28, 10, 0, tzinfo=paris)
    )
    await hooks.post("/webhooks/generic", b"{}", JSON)
    received_at = hooks.publisher.records[0].headers["received-at"]
    assert received_at == "2026-11-28T09:00:00+00:00"
    assert datetime.fromisoformat(received_at) == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


async def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    hooks = receiver(settings(allow_unauthenticated=["generic"]))
    body = b'{"pad": "' + b"x" * (LIMIT - 11) + b'"}'
    assert len(body) == LIMIT
    assert (await hooks.post("/webhooks/generic", body, JSON)).status_code == 202
    chunked = CountedBody(b" " * (LIMIT // 4 - 1), 4)  # whitespace around nothing: not JSON, but within the limit
    assert (await hooks.post("/webhooks/generic", chunked, JSON)).status_code == 400


# --- refused ----------------------------------------------------------------------------------------------------------


async def test_unknown_source_is_404_and_counted_as_unknown(hooks: Receiver) -> None:
    for name in ["nagios", "icinga", "x" * 200]:
        response = await hooks.post(f"/webhooks/{name}", b"{}", JSON)
        assert response.status_code == 404
    assert hooks.count("unknown", 404) == 3
    assert hooks.publisher.records == []


async def test_bad_signature_is_403_and_nothing_is_published(hooks: Receiver) -> None:
    body = fixture("pagerduty", "resolved.json")
    headers = pd_headers(body, PD_SECRET)
    tampered = body.replace(b"resolved", b"resolveD", 1)
    response = await hooks.post("/webhooks/pagerduty", tampered, headers)
    assert response.status_code == 403
    assert hooks.publisher.records == []
    assert hooks.count("pagerduty", 403) == 1


async def test_valid_body_signed_with_another_secret_is_403(hooks: Receiver) -> None:
    body = fixture("pagerduty", "resolved.json")
    assert (await hooks.post("/webhooks/pagerduty", body, pd_headers(body, "someone-elses-secret"))).status_code == 403
    incidentio = fixture("incidentio", "incident_updated_closed.json")
    ts = str(int(NOW.timestamp()))
    foreign = svix_headers(incidentio, new_svix_secret(), message_id="msg_1", timestamp=ts)
    assert (await hooks.post("/webhooks/incidentio", incidentio, {**JSON, **foreign})).status_code == 403
    grafana = {**JSON, "X-Grafana-Alerting-Signature": grafana_signature(body, "not-" + GRAFANA_SECRET)}
    assert (await hooks.post("/webhooks/grafana", body, grafana)).status_code == 403
    assert hooks.publisher.records == []


async def test_replayed_incidentio_delivery_is_403(hooks: Receiver) -> None:
    body = fixture("incidentio", "incident_updated_closed.json")
    stale = str(int((NOW - timedelta(minutes=6)).timestamp()))
    headers = {**JSON, **svix_headers(body, INCIDENTIO_SECRET, message_id="msg_1", timestamp=stale)}
    assert (await hooks.post("/webhooks/incidentio", body, headers)).status_code == 403


async def test_missing_credentials_are_401_with_a_challenge_and_the_body_is_not_read(hooks: Receiver) -> None:
    for source in ["pagerduty", "incidentio", "grafana", "opsgenie", "zabbix"]:
        body = CountedBody(b"{}", 1)
        response = await hooks.post(f"/webhooks/{source}", body, JSON)
        assert response.status_code == 401, source
        assert "realm=" in response.headers["www-authenticate"]
        assert body.pulled == 0, source
    assert hooks.publisher.records == []
    assert hooks.count("zabbix", 401) == 1


async def test_a_source_without_any_configured_credential_is_refused(hooks: Receiver) -> None:
    for source in ["datadog", "generic", "cloudevents", "grafana-oncall"]:
        response = await hooks.post(f"/webhooks/{source}", b"{}", {**JSON, "Authorization": "Bearer anything"})
        assert response.status_code == 401, source
    assert hooks.publisher.records == []


async def test_wrong_token_is_403(hooks: Receiver) -> None:
    for authorization in [f"Bearer {OPSGENIE_TOKEN}x", "Bearer am-token", basic("opsgenie", OPSGENIE_TOKEN), "Token t"]:
        response = await hooks.post("/webhooks/opsgenie", b"{}", {**JSON, "Authorization": authorization})
        assert response.status_code == 403, authorization
    assert hooks.publisher.records == []


async def test_oversize_body_with_content_length_is_413_before_anything_is_read(hooks: Receiver) -> None:
    body = CountedBody(b"x" * 1024, 65)
    headers = {**JSON, "Content-Length": str(65 * 1024), **pd_headers(b"", PD_SECRET)}
    response = await hooks.post("/webhooks/pagerduty", body, headers)
    assert response.status_code == 413
    assert body.pulled == 0
    assert response.headers["connection"] == "close"
    assert hooks.count("pagerduty", 413) == 1


async def test_oversize_chunked_body_is_413_and_the_rest_is_never_read(hooks: Receiver) -> None:
    body = CountedBody(b"x" * 1024, 10_000)  # 10 MB, no Content-Length
    response = await hooks.post("/webhooks/opsgenie", body, {**JSON, "Authorization": f"Bearer {OPSGENIE_TOKEN}"})
    assert response.status_code == 413
    assert body.pulled == LIMIT // 1024 + 1  # stopped at the first chunk past the limit
    assert hooks.publisher.records == []


async def test_oversize_is_refused_even_before_credentials_are_checked(hooks: Receiver) -> None:
    response = await hooks.post("/webhooks/opsgenie", b"x" * (LIMIT + 1), JSON)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "json",
        "application/+json",
        "application/jsonp",
        "text/json",
    ],
)
async def test_content_type_that_is_not_json_is_415(hooks: Receiver, content_type: str) -> None:
    response = await hooks.post(
        "/webhooks/opsgenie", b"{}", {"content-type": content_type, "Authorization": f"Bearer {OPSGENIE_TOKEN}"}
    )
    assert response.status_code == 415
    assert hooks.publisher.records == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b'{"a": 1}}',
        b"\xff\xfe{}",
        '{"\u00e9": 1}'.encode("latin-1"),
        b"[" * 50_000 + b"]" * 50_000,
    ],
    ids=["empty", "text", "truncated", "trailing", "bom-garbage", "latin-1", "nested-too-deep"],
)
async def test_body_that_is_not_json_is_400_after_the_signature_passed(body: bytes) -> None:
    hooks = receiver(settings(max_body_bytes=1000 * 1000))
    response = await hooks.post("/webhooks/pagerduty", body, pd_headers(body, PD_SECRET))
    assert response.status_code == 400
    assert hooks.publisher.records == []
    assert hooks.count("pagerduty", 400) == 1


async def test_the_signature_is_checked_before_the_body_is_judged(hooks: Receiver) -> None:
    response = await hooks.post("/webhooks/pagerduty", b"not json", pd_headers(b"other", PD_SECRET))
    assert response.status_code == 403


@pytest.mark.parametrize("behaviour", ["fail", "hang"])
async def test_kafka_down_or_slow_is_503_with_retry_after_and_nothing_recorded(
    behaviour: Literal["fail", "hang"],
) -> None:
    publisher = FakePublisher(behaviour)
    hooks = receiver(settings(), publisher)
    body = fixture("pagerduty", "resolved.json")
    response = await hooks.post("/webhooks/pagerduty", body, pd_headers(body, PD_SECRET))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "17"
    assert publisher.records == []
    assert hooks.count("pagerduty", 503) == 1
    assert hooks.count("pagerduty", 202) == 0


async def test_source_names_are_matched_without_regard_to_case(hooks: Receiver) -> None:
    response = await hooks.post("/webhooks/OpsGenie", b"{}", {**JSON, "Authorization": f"Bearer {OPSGENIE_TOKEN}"})
    assert response.status_code == 202
    assert hooks.publisher.records[0].headers["source"] == "opsgenie"


async def test_every_known_source_has_a_route(hooks: Receiver) -> None:
    for source in SOURCES:
        assert (await hooks.post(f"/webhooks/{source}", b"{}", JSON)).status_code in {401, 202}, source


async def test_logs_carry_neither_bodies_nor_credentials(hooks: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = b'{"summary": "customer card 4111-1111-1111-1111"}'
    await hooks.post("/webhooks/opsgenie", marker, {**JSON, "Authorization": f"Bearer {OPSGENIE_TOKEN}"})
    await hooks.post("/webhooks/opsgenie", marker, {**JSON, "Authorization": f"Bearer {OPSGENIE_TOKEN}-guess"})
    await hooks.post("/webhooks/pagerduty", marker, pd_headers(marker, PD_SECRET))
    await hooks.post("/webhooks/pagerduty", b"\x00" + marker, pd_headers(b"\x00" + marker, PD_SECRET))
    failing = receiver(settings(), FakePublisher("fail"))
    await failing.post("/webhooks/pagerduty", marker, pd_headers(marker, PD_SECRET))
    logged = caplog.text
    assert "webhooks: opsgenie delivery" in logged
    assert "refused with 403" in logged
    for secret in [OPSGENIE_TOKEN, PD_SECRET, PD_OLD_SECRET, GRAFANA_SECRET, INCIDENTIO_SECRET, "4111", "customer"]:
        assert secret not in logged, secret
    assert pagerduty_signature(marker, PD_SECRET)[3:] not in logged


async def test_the_route_is_documented_in_openapi(hooks: Receiver) -> None:
    spec = hooks.app.openapi()
    operation = spec["paths"]["/webhooks/{source}"]["post"]
    assert {"202", "401", "403", "404", "413", "415", "503"} <= set(operation["responses"])
    assert "application/json" in operation["requestBody"]["content"]
    json.dumps(spec)
