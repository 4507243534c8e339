"""Chat through incoming webhooks (Slack, Mattermost, Microsoft Teams): one JSON POST per message.

Only the configured URL is contacted: redirects are not followed (a 3xx is a refusal). The URL is a credential, so
no error message or log line carries it; failures name the destination instead. 2xx is delivered; 408, 429 and
5xx are retried; any other answer is a permanent refusal (the partition never waits on it: see the dispatcher).
"""

import asyncio
import http.client
import json
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from services.notify.channels.failures import DeliveryError
from services.notify.domain.chat_formats import payload_for
from services.notify.domain.rendering import Message

RETRYABLE_STATUSES = frozenset({408, 425, 429})
RESPONSE_CHARS = 200


class ChatSender:
    def __init__(self, webhooks: Mapping[str, SecretStr], kinds: Mapping[str, str], *, timeout_seconds: float) -> None:
        self._webhooks = dict(webhooks)
        self._kinds = dict(kinds)
        self._timeout = timeout_seconds

    async def send(self, destination: str, handle: str | None, message: Message) -> None:
        url = self._webhooks.get(destination)
        kind = self._kinds.get(destination)
        if url is None or kind is None:
            raise DeliveryError(f"chat destination {destination!r} is not configured", permanent=True)
        body = json.dumps(payload_for(kind, message, handle)).encode()
        status, answer = await asyncio.to_thread(self._post, url, body)
        if 200 <= status < 300:
            return
        said = " ".join(answer.split())[:RESPONSE_CHARS]
        retry = status >= 500 or status in RETRYABLE_STATUSES
        raise DeliveryError(f"{kind} webhook {destination!r} answered {status}: {said}", permanent=not retry)

    def _post(self, url: SecretStr, body: bytes) -> tuple[int, str]:
        parts = urlsplit(url.get_secret_value())
        connection: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=self._timeout, context=ssl.create_default_context()
                )
            else:
                connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self._timeout)
            try:
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                connection.request("POST", target, body=body, headers=_headers(len(body)))
                response = connection.getresponse()
                return response.status, response.read(4096).decode(errors="replace")
            finally:
                connection.close()
        except (OSError, http.client.HTTPException) as exc:
            # The exception's text may name the host but never the path (where the webhook's secret is).
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}", permanent=False) from None


def _headers(length: int) -> dict[str, Any]:
    return {"Content-Type": "application/json", "Content-Length": str(length), "User-Agent": "incident-lessons-notify"}
