"""The pure credential checks against vectors computed here (hmac in the test) and one published by Svix."""

import base64
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.webhooks import signatures
from services.ingest.webhooks.signatures import Verdict, combine, svix_key
from tests.unit.webhooks.signing import (
    basic,
    grafana_signature,
    new_svix_secret,
    pagerduty_signature,
    svix_headers,
    svix_signature,
)

BODY = b'{"event":{"id":"01DEN1HNLBC1VITYCTTBQ5D6ZU","event_type":"incident.resolved"}}'
NOW = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


def unix(at: datetime) -> str:
    return str(int(at.timestamp()))


# --- PagerDuty -------------------------------------------------------------------------------------------------------


def pd(header: str | None, *secrets: str, body: bytes = BODY) -> Verdict:
    return signatures.pagerduty(body, header, [s.encode() for s in secrets])


def test_pagerduty_signature_of_the_body_is_valid() -> None:
    assert pd(pagerduty_signature(BODY, "s3cret"), "s3cret") is Verdict.VALID


def test_pagerduty_rotation_one_of_several_signatures_matches_one_of_several_secrets() -> None:
    header = pagerduty_signature(BODY, "retired", "current")  # PagerDuty signs with both during its rotation
    assert pd(header, "current") is Verdict.VALID
    assert pd(pagerduty_signature(BODY, "old"), "new", "old") is Verdict.VALID  # our side rotating


def test_pagerduty_tolerates_spaces_and_upper_case_hex_and_skips_other_versions() -> None:
    valid = pagerduty_signature(BODY, "s3cret")
    assert pd(f"v0=abc , {valid.upper().replace('V1=', 'v1=')} ", "s3cret") is Verdict.VALID


def test_pagerduty_tampered_body_and_wrong_secret_are_rejected() -> None:
    header = pagerduty_signature(BODY, "s3cret")
    assert pd(header, "s3cret", body=BODY + b" ") is Verdict.REJECTED
    assert pd(header, "another") is Verdict.REJECTED
    assert pd(header) is Verdict.REJECTED  # nothing configured: nothing matches


@pytest.mark.parametrize("header", [None, "", "   "])
def test_pagerduty_without_a_signature_is_missing(header: str | None) -> None:
    assert pd(header, "s3cret") is Verdict.MISSING


@pytest.mark.parametrize(
    "header",
    ["garbage", "v1=", "v1", ",,,", "v2=" + pagerduty_signature(BODY, "s3cret")[3:], "v1=zz", "v1=é", "v1=\x00"],
)
def test_pagerduty_malformed_headers_are_rejected(header: str) -> None:
    assert pd(header, "s3cret") is Verdict.REJECTED


# --- Grafana ---------------------------------------------------------------------------------------------------------


def gf(
    signature: str | None,
    timestamp: str | None = None,
    *,
    secrets: tuple[str, ...] = ("g-secret",),
    require_timestamp: bool = False,
) -> Verdict:
    keys = [s.encode() for s in secrets]
    return signatures.grafana(
        BODY, signature, timestamp, keys, now=NOW, tolerance=FIVE_MINUTES, require_timestamp=require_timestamp
    )


def test_grafana_body_only_signature_is_valid() -> None:
    assert gf(grafana_signature(BODY, "g-secret")) is Verdict.VALID


def test_grafana_timestamped_signature_is_valid_when_recent() -> None:
    ts = unix(NOW - timedelta(seconds=30))
    assert gf(grafana_signature(BODY, "g-secret", ts), ts) is Verdict.VALID


def test_grafana_rotation_accepts_any_configured_secret() -> None:
    assert gf(grafana_signature(BODY, "old"), secrets=("new", "old")) is Verdict.VALID


def test_grafana_old_or_future_or_garbled_timestamps_are_rejected() -> None:
    for at in (NOW - timedelta(seconds=301), NOW + timedelta(seconds=301)):
        ts = unix(at)
        assert gf(grafana_signature(BODY, "g-secret", ts), ts) is Verdict.REJECTED
    assert gf(grafana_signature(BODY, "g-secret", "1.5"), "1.5") is Verdict.REJECTED
    assert gf(grafana_signature(BODY, "g-secret", "-1"), "-1") is Verdict.REJECTED


def test_grafana_signature_must_cover_the_timestamp_that_came() -> None:
    ts = unix(NOW)
    assert gf(grafana_signature(BODY, "g-secret"), ts) is Verdict.REJECTED  # body-only signature, timestamp added
    assert gf(grafana_signature(BODY, "g-secret", ts)) is Verdict.REJECTED  # timestamp header stripped
    assert gf(grafana_signature(BODY, "g-secret", unix(NOW - timedelta(seconds=1))), ts) is Verdict.REJECTED


def test_grafana_can_require_a_timestamp() -> None:
    assert gf(grafana_signature(BODY, "g-secret"), require_timestamp=True) is Verdict.REJECTED
    ts = unix(NOW)
    assert gf(grafana_signature(BODY, "g-secret", ts), ts, require_timestamp=True) is Verdict.VALID


def test_grafana_wrong_secret_tampered_missing_and_malformed() -> None:
    assert gf(grafana_signature(BODY, "other")) is Verdict.REJECTED
    assert gf(grafana_signature(BODY + b"x", "g-secret")) is Verdict.REJECTED
    assert gf(None) is Verdict.MISSING
    assert gf(" ") is Verdict.MISSING
    assert gf("sha256=" + grafana_signature(BODY, "g-secret")) is Verdict.REJECTED  # Grafana sends bare hex
    assert gf("ü" * 64) is Verdict.REJECTED


# --- Svix (incident.io) ----------------------------------------------------------------------------------------------

SVIX_DOCS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def sv(headers: dict[str, str], *secrets: str, body: bytes = BODY, now: datetime = NOW) -> Verdict:
    return signatures.svix(
        body,
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
        [svix_key(s) for s in secrets],
        now=now,
        tolerance=FIVE_MINUTES,
    )


def test_svix_matches_the_example_in_svix_documentation() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    at = datetime.fromtimestamp(1614265330, UTC)
    assert sv(headers, SVIX_DOCS_SECRET, body=b'{"test": 2432232314}', now=at) is Verdict.VALID


def test_svix_valid_and_rotated_signatures() -> None:
    old, new = new_svix_secret(), new_svix_secret()
    headers = svix_headers(BODY, new, old, message_id="msg_1", timestamp=unix(NOW))
    assert sv(headers, old) is Verdict.VALID  # one of the space-separated signatures matches
    assert sv(svix_headers(BODY, old, message_id="msg_1", timestamp=unix(NOW)), new, old) is Verdict.VALID


def test_svix_timestamp_tolerance_is_five_minutes_either_way() -> None:
    secret = new_svix_secret()
    for offset, verdict in [
        (-300, Verdict.VALID),
        (300, Verdict.VALID),
        (-301, Verdict.REJECTED),
        (301, Verdict.REJECTED),
    ]:
        ts = unix(NOW + timedelta(seconds=offset))
        assert sv(svix_headers(BODY, secret, message_id="msg_1", timestamp=ts), secret) is verdict, offset


def test_svix_old_delivery_is_rejected_even_with_a_good_signature() -> None:
    secret = new_svix_secret()
    ts = unix(NOW - timedelta(hours=1))
    assert sv(svix_headers(BODY, secret, message_id="msg_1", timestamp=ts), secret) is Verdict.REJECTED


def test_svix_signature_covers_id_timestamp_and_body() -> None:
    secret = new_svix_secret()
    headers = svix_headers(BODY, secret, message_id="msg_1", timestamp=unix(NOW))
    assert sv({**headers, "webhook-id": "msg_2"}, secret) is Verdict.REJECTED
    assert sv({**headers, "webhook-timestamp": unix(NOW - timedelta(seconds=1))}, secret) is Verdict.REJECTED
    assert sv(headers, secret, body=BODY.replace(b"resolved", b"triggered")) is Verdict.REJECTED
    assert sv(headers, new_svix_secret()) is Verdict.REJECTED


def test_svix_missing_and_malformed_headers() -> None:
    secret = new_svix_secret()
    headers = svix_headers(BODY, secret, message_id="msg_1", timestamp=unix(NOW))
    assert sv({k: v for k, v in headers.items() if k != "webhook-signature"}, secret) is Verdict.MISSING
    assert sv({k: v for k, v in headers.items() if k != "webhook-id"}, secret) is Verdict.REJECTED
    assert sv({k: v for k, v in headers.items() if k != "webhook-timestamp"}, secret) is Verdict.REJECTED
    valid = headers["webhook-signature"]
    for signature in ["v1", "v1,", "v2," + valid[3:], "v1," + valid[3:-4], "v1,***", valid.replace(",", "=")]:
        assert sv({**headers, "webhook-signature": signature}, secret) is Verdict.REJECTED, signature
    for timestamp in ["+" + unix(NOW), unix(NOW) + ".0", "١٢", " ", "9" * 40]:
        assert sv({**headers, "webhook-timestamp": timestamp}, secret) is Verdict.REJECTED, timestamp


def test_svix_key_accepts_the_prefix_or_not_and_never_echoes_a_bad_secret() -> None:
    raw = b"0123456789abcdef"
    encoded = base64.b64encode(raw).decode()
    assert svix_key("whsec_" + encoded) == raw
    assert svix_key(encoded) == raw
    for bad in ["whsec_not base64!", "whsec_", ""]:
        with pytest.raises(ValueError, match="Svix signing secret") as caught:
            svix_key(bad)
        assert "not base64!" not in str(caught.value)
        assert caught.value.__cause__ is None  # the decoder's message is not chained either


def test_svix_signature_helper_agrees_with_the_published_example() -> None:
    """The test's own signer is checked against Svix's example too, so both sides are anchored to the vendor."""
    assert (
        svix_signature(b'{"test": 2432232314}', SVIX_DOCS_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330")
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# --- Authorization ---------------------------------------------------------------------------------------------------


def auth(header: str | None, tokens: tuple[str, ...] = (), pairs: tuple[str, ...] = ()) -> Verdict:
    return signatures.authorization(header, [t.encode() for t in tokens], [p.encode() for p in pairs])


def test_bearer_tokens() -> None:
    assert auth("Bearer t0ken", ("t0ken",)) is Verdict.VALID
    assert auth("bearer   t0ken ", ("old", "t0ken")) is Verdict.VALID
    assert auth("Bearer t0ken-not", ("t0ken",)) is Verdict.REJECTED
    assert auth("Bearer", ("t0ken",)) is Verdict.REJECTED
    assert auth("Bearer tökèn", ("t0ken",)) is Verdict.REJECTED
    assert auth("t0ken", ("t0ken",)) is Verdict.REJECTED  # no scheme
    assert auth(None, ("t0ken",)) is Verdict.MISSING
    assert auth("", ("t0ken",)) is Verdict.MISSING


def test_basic_credentials() -> None:
    assert auth(basic("zabbix", "pa:ss"), pairs=("zabbix:pa:ss",)) is Verdict.VALID
    assert auth(basic("zabbix", "wrong"), pairs=("zabbix:pa:ss",)) is Verdict.REJECTED
    assert auth("Basic ***", pairs=("zabbix:pa:ss",)) is Verdict.REJECTED
    assert auth("Basic é", pairs=("zabbix:pa:ss",)) is Verdict.REJECTED


def test_a_scheme_that_is_not_configured_is_rejected() -> None:
    assert auth(basic("u", "t0ken"), tokens=("t0ken",)) is Verdict.REJECTED
    assert auth("Bearer u:p", pairs=("u:p",)) is Verdict.REJECTED
    assert auth("Token t0ken", tokens=("t0ken",)) is Verdict.REJECTED


def test_combine_wrong_outweighs_missing() -> None:
    assert combine([]) is Verdict.VALID
    assert combine([Verdict.VALID, Verdict.VALID]) is Verdict.VALID
    assert combine([Verdict.VALID, Verdict.MISSING]) is Verdict.MISSING
    assert combine([Verdict.MISSING, Verdict.REJECTED]) is Verdict.REJECTED
