"""The web UI's sign-in session: a signed cookie holding who signed in, with which role, until when.

The cookie is ``<payload>.<signature>``: the payload is base64url JSON ``{"name", "role", "expires"}``, the signature
HMAC-SHA256 over it with ``REVIEW_WEB_SESSION_SECRET``. Nothing is stored server-side, so any replica holding the
same secret reads it; changing the secret ends every session. A session names the token's client, never the token.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.review.auth import ApiClient, Role

SESSION_COOKIE = "lessons_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    client: ApiClient
    expires: datetime


class SessionCookies:
    """Issues and reads signed session cookies; a cookie that is forged, altered, malformed or expired reads as None."""

    def __init__(self, secret: bytes, lifetime: timedelta, clock: Callable[[], datetime]) -> None:
        self._key = hashlib.sha256(b"lessons-session|" + secret).digest()
        self.lifetime = lifetime
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, client: ApiClient) -> str:
        expires = self._clock() + self.lifetime
        body = {"name": client.name, "role": str(client.role), "expires": int(expires.timestamp())}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            client = ApiClient(name=body["name"], role=Role(body["role"]))
            expires = datetime.fromtimestamp(int(body["expires"]), tz=self._clock().tzinfo)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if expires <= self._clock():
            return None
        return Session(client, expires)
