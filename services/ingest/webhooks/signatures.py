"""Webhook credential checks as pure functions: raw body and header values in, a ``Verdict`` out.

No I/O, no clock of their own (the caller passes ``now``), no framework: easy to test against vectors computed
independently. Every comparison of a secret-derived value is constant-time (``hmac.compare_digest`` on bytes; it
refuses non-ASCII ``str``, and header values can be anything).

- PagerDuty (Webhooks V3): ``X-PagerDuty-Signature: v1=<hex>,v1=<hex>``, HMAC-SHA256 of the raw body with each
  signing secret of the subscription (several during a rotation).
- Grafana alerting (11.6+): the signature header holds the bare lower-case hex HMAC-SHA256 of the raw body, or of
  ``<timestamp>:<body>`` when the contact point has a timestamp header configured (Unix seconds).
- Svix / Standard Webhooks (incident.io): ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
  ``webhook-signature: v1,<base64> v1,<base64>``; the HMAC-SHA256 is over ``<id>.<timestamp>.<body>`` and keyed with
  the base64-decoded part of the ``whsec_...`` secret.
- ``Authorization: Bearer <token>`` or ``Basic <base64(user:password)>`` for the tools that cannot sign.
"""

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import Enum

SVIX_SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of a secret, not one
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class Verdict(Enum):
    """What a credential check concluded; the receiver answers 401 for ``MISSING`` and 403 for ``REJECTED``."""

    VALID = "valid"
    MISSING = "missing"
    REJECTED = "rejected"


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """All checks must pass; a wrong credential outweighs a missing one (403 before 401)."""
    found = set(verdicts)
    if Verdict.REJECTED in found:
        return Verdict.REJECTED
    if Verdict.MISSING in found:
        return Verdict.MISSING
    return Verdict.VALID


def _hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _any_equal(expected: Iterable[bytes], offered: Sequence[bytes]) -> bool:
    """Whether any offered value equals any expected one; every pair is compared, in constant time each."""
    matched = False
    for want in expected:
        for got in offered:
            matched |= hmac.compare_digest(want, got)
    return matched


def _text(value: str | None) -> str:
    return (value or "").strip()


def _within(timestamp: str, now: datetime, tolerance: timedelta) -> bool:
    """A Unix-seconds timestamp (ASCII digits only) no further than ``tolerance`` from ``now``, either way."""
    if not _UNIX_SECONDS.fullmatch(timestamp):
        return False
    return abs(now.timestamp() - int(timestamp)) <= tolerance.total_seconds()


def pagerduty(body: bytes, signature_header: str | None, secrets: Sequence[bytes]) -> Verdict:
    """PagerDuty V3: valid when one ``v1=`` signature of the header is the HMAC of the body with one secret."""
    header = _text(signature_header)
    if not header:
        return Verdict.MISSING
    offered = [
        item.strip()[3:].strip().lower().encode()
        for item in header.split(",")
        if item.strip().startswith("v1=")  # other versions are skipped, as PagerDuty's algorithm says
    ]
    expected = (_hmac_sha256(secret, body).hex().encode() for secret in secrets)
    return Verdict.VALID if offered and _any_equal(expected, offered) else Verdict.REJECTED


def grafana(
    body: bytes,
    signature_header: str | None,
    timestamp_header: str | None,
    secrets: Sequence[bytes],
    *,
    now: datetime,
    tolerance: timedelta,
    require_timestamp: bool = False,
) -> Verdict:
    """Grafana alerting: hex HMAC of ``<timestamp>:<body>`` when a timestamp header came, else of the body.

    A timestamp that came must be recent (replay protection); ``require_timestamp`` refuses deliveries without one.
    """
    signature = _text(signature_header)
    if not signature:
        return Verdict.MISSING
    timestamp = _text(timestamp_header)
    if timestamp:
        if not _within(timestamp, now, tolerance):
            return Verdict.REJECTED
        parts: tuple[bytes, ...] = (timestamp.encode(), b":", body)
    elif require_timestamp:
        return Verdict.REJECTED
    else:
        parts = (body,)
    expected = (_hmac_sha256(secret, *parts).hex().encode() for secret in secrets)
    return Verdict.VALID if _any_equal(expected, [signature.lower().encode()]) else Verdict.REJECTED


def svix_key(secret: str) -> bytes:
    """The HMAC key of a Svix secret: the base64 after the ``whsec_`` prefix (the prefix is optional).

    Raises ``ValueError`` when the rest is not base64 (without repeating the secret).
    """
    encoded = secret.strip().removeprefix(SVIX_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a Svix signing secret: expected whsec_ followed by base64") from None
    if not key:
        raise ValueError("not a Svix signing secret: the key is empty")
    return key


def svix(
    body: bytes,
    message_id: str | None,
    timestamp_header: str | None,
    signature_header: str | None,
    keys: Sequence[bytes],
    *,
    now: datetime,
    tolerance: timedelta,
) -> Verdict:
    """Svix / Standard Webhooks: one ``v1,`` signature (space-separated list) over ``<id>.<timestamp>.<body>``."""
    signatures = _text(signature_header)
    if not signatures:
        return Verdict.MISSING
    msg_id, timestamp = _text(message_id), _text(timestamp_header)
    if not msg_id or not _within(timestamp, now, tolerance):
        return Verdict.REJECTED
    offered = [
        value.encode()
        for version, _, value in (item.partition(",") for item in signatures.split())
        if version == "v1"  # other schemes (v1a: asymmetric) are not ours to check
    ]
    signed = (msg_id.encode(), b".", timestamp.encode(), b".", body)
    expected = (base64.b64encode(_hmac_sha256(key, *signed)) for key in keys)
    return Verdict.VALID if offered and _any_equal(expected, offered) else Verdict.REJECTED


def authorization(header: str | None, bearer_tokens: Sequence[bytes], basic_credentials: Sequence[bytes]) -> Verdict:
    """``Authorization: Bearer <token>`` against the tokens, or ``Basic ...`` against ``user:password`` pairs."""
    value = _text(header)
    if not value:
        return Verdict.MISSING
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and bearer_tokens:
        return Verdict.VALID if _any_equal(bearer_tokens, [credentials.encode()]) else Verdict.REJECTED
    if scheme.lower() == "basic" and basic_credentials:
        try:
            pair = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return Verdict.REJECTED
        return Verdict.VALID if _any_equal(basic_credentials, [pair]) else Verdict.REJECTED
    return Verdict.REJECTED
