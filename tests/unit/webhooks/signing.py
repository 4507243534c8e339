"""Signing as each vendor does it, written from their documentation and independent of the code under test."""

import base64
import hashlib
import hmac
import os


def pagerduty_signature(body: bytes, *secrets: str) -> str:
    """``X-PagerDuty-Signature``: ``v1=<hex HMAC-SHA256 of the body>`` per secret, comma-separated."""
    return ",".join("v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets)


def grafana_signature(body: bytes, secret: str, timestamp: str | None = None) -> str:
    """Grafana alerting: hex HMAC-SHA256 of ``<timestamp>:<body>``, or of the body when no timestamp header is set."""
    message = body if timestamp is None else timestamp.encode() + b":" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_svix_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def svix_signature(body: bytes, secret: str, message_id: str, timestamp: str) -> str:
    """``v1,<base64 HMAC-SHA256 of <id>.<timestamp>.<body>>`` keyed with the base64 part of ``whsec_...``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def svix_headers(body: bytes, *secrets: str, message_id: str, timestamp: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(svix_signature(body, s, message_id, timestamp) for s in secrets),
    }


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
