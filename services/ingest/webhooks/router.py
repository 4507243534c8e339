"""``POST /webhooks/{source}``: a vendor's webhook, checked, written unchanged to the raw topic, then answered.

In order, each step refusing before the next costs anything:

1. unknown source: 404;
2. ``Content-Length`` above the limit: 413, nothing read;
3. credentials that need no body (``Authorization``; a signature header at all): 401 missing, 403 wrong;
4. a media type that is not JSON: 415 (``application/json``, ``application/<x>+json``; none at all is accepted);
5. the body, streamed and counted: 413 as soon as it passes the limit, the rest never read;
6. the signature over the raw body: 403;
7. not JSON: 400 (parsed only to check it; normalising is the consumer's job);
8. the record (body, key and headers) larger than Kafka's record limit: 413 (a body within the limit always fits
   unless the caller sent kilobytes of CloudEvent headers);
9. the publish, awaited until Kafka acknowledged it (bounded by a timeout): 202; 413 if Kafka refused the record for
   its size (permanent: retrying cannot help); else 503 with ``Retry-After`` (broker unavailable, timeout).

Logs name the source, the status and why, never a body, a credential or a header value an unauthenticated caller
chose (the delivery id is logged only once the request is authenticated).
"""

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import ClientDisconnect

from servicekit.clock import utc_now
from services.ingest.webhooks.auth import SourceAuth, source_auth
from services.ingest.webhooks.publisher import RawPublisher, RecordTooLargeError, record_size
from services.ingest.webhooks.settings import WebhookSettings
from services.ingest.webhooks.signatures import Verdict

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DEFAULT_CONTENT_TYPE = "application/json"
# Where a vendor says which delivery this is (the same on its retries); elsewhere a fresh uuid4.
DELIVERY_ID_HEADERS: Mapping[str, tuple[str, ...]] = {
    "pagerduty": ("x-webhook-id",),
    "incidentio": ("webhook-id", "svix-id"),
}
_DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, bounded: it becomes a Kafka header
_CLOUDEVENT_HEADER = re.compile(r"ce-([a-z0-9]{1,20})")  # HTTP binary mode attribute headers

_RESPONSES: dict[int | str, dict[str, str]] = {
    202: {"description": "Written to the raw topic and acknowledged by Kafka"},
    400: {"description": "The body is not JSON"},
    401: {"description": "No credential was sent, or none is configured for this source"},
    403: {"description": "A credential was sent but is wrong (bad signature or token, stale timestamp)"},
    404: {"description": "Unknown source"},
    413: {"description": "Body over INGEST_WEBHOOK_MAX_BODY_BYTES, or its record over Kafka's record limit"},
    415: {"description": "The content type is not JSON"},
    503: {"description": "Kafka did not acknowledge in time: retry after Retry-After seconds"},
}
_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "description": "The tool's JSON payload, as it sends it (written to Kafka byte for byte)",
        "content": {"application/json": {"schema": {}}},
    }
}


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` suffix type (``application/cloudevents+json``); parameters ignored."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > len("+json")))


def is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return True


def delivery_id(source: str, headers: Mapping[str, str]) -> str:
    """The vendor's delivery id when it sent a sane one, else a new uuid4."""
    for name in DELIVERY_ID_HEADERS.get(source, ()):
        value = (headers.get(name) or "").strip()
        if _DELIVERY_ID.fullmatch(value):
            return value
    return str(uuid.uuid4())


def cloudevent_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """HTTP binary-mode CloudEvent attributes (``ce-id``: percent-encoded) as Kafka binary-mode ones (``ce_id``)."""
    found = {}
    for name, value in headers.items():
        match = _CLOUDEVENT_HEADER.fullmatch(name.lower())
        if match:
            found[f"ce_{match.group(1)}"] = unquote(value)
    return found


class RefusedError(Exception):
    """A request the receiver answers with ``status`` (and these headers) instead of publishing it."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, *, why: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
        self.why = why or detail  # for the log only: the caller gets ``detail``


class WebhookReceiver:
    """The steps of one delivery (see the module docstring); the route only maps them to a response and a count."""

    def __init__(self, settings: WebhookSettings, publisher: RawPublisher, clock: Clock) -> None:
        self.settings = settings
        self.publisher = publisher
        self.clock = clock
        self.checks = source_auth(settings)
        self.too_large = f"body larger than {settings.max_body_bytes} bytes"

    def label(self, source: str) -> str:
        """The metric label: a known source, or ``unknown`` (a caller-chosen path must not grow the series)."""
        return source if source in self.checks else "unknown"

    async def receive(self, source: str, request: Request) -> dict[str, str]:
        """Publish the delivery and return the record's headers, or raise ``RefusedError``."""
        now = self.clock()
        check = self.checks.get(source)
        if check is None:
            raise RefusedError(404, "unknown source")
        headers = request.headers
        self.refuse_declared_size(headers)
        self.authenticate(check.check_headers(headers), check)
        content_type = headers.get("content-type", "").strip() or None
        if content_type is not None and not is_json_media_type(content_type):
            raise RefusedError(415, "send JSON: application/json or application/<type>+json")
        body = await self.read_body(request)
        self.authenticate(check.check_signature(headers, body, now), check)
        if not is_json(body):
            raise RefusedError(400, "the body is not JSON")
        record_headers = {
            "source": source,
            "content-type": content_type or DEFAULT_CONTENT_TYPE,
            "delivery-id": delivery_id(source, headers),
            "received-at": now.astimezone(UTC).isoformat(),
        }
        if source == "cloudevents":
            record_headers = {**cloudevent_headers(headers), **record_headers}
        size = record_size(body, record_headers, None)
        if size > self.settings.record_limit_bytes:
            why = f"record of {size} bytes, over the {self.settings.record_limit_bytes}-byte Kafka record limit"
            raise RefusedError(413, "body and headers too large for one Kafka record", why=why)
        await self.publish(body, record_headers)
        log.info("webhooks: %s delivery %r written (%d bytes)", source, record_headers["delivery-id"], len(body))
        return record_headers

    def refuse_declared_size(self, headers: Mapping[str, str]) -> None:
        # A malformed Content-Length never reaches us (the server refuses the framing); the stream is counted anyway.
        declared = headers.get("content-length", "").strip()
        if declared.isdecimal() and int(declared) > self.settings.max_body_bytes:
            raise RefusedError(413, self.too_large, {"Connection": "close"})

    @staticmethod
    def authenticate(verdict: Verdict, check: SourceAuth) -> None:
        if verdict is Verdict.MISSING:
            why = "credentials required" if check.configured else "no credentials configured (docs/webhooks.md)"
            raise RefusedError(401, "credentials required", {"WWW-Authenticate": check.challenge}, why=why)
        if verdict is Verdict.REJECTED:
            raise RefusedError(403, "credentials are not valid")

    async def read_body(self, request: Request) -> bytes:
        """The body, counted as it streams in (chunked requests declare no length): 413 once past the limit."""
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.settings.max_body_bytes:
                    raise RefusedError(413, self.too_large, {"Connection": "close"})
                chunks.append(chunk)
        except ClientDisconnect:
            raise RefusedError(400, "the client disconnected before sending the whole body") from None
        return b"".join(chunks)

    async def publish(self, body: bytes, headers: dict[str, str]) -> None:
        """Awaited until acknowledged; the timeout is ours, so any publisher is bounded."""
        timeout = self.settings.publish_timeout_seconds
        try:
            await asyncio.wait_for(self.publisher.publish_raw(body, headers, None), timeout)
        except RecordTooLargeError:
            why = "Kafka refused the record for its size"
            raise RefusedError(413, "too large for one Kafka record", why=why) from None
        except TimeoutError:
            log.warning("webhooks: publish timed out after %ss", timeout)
        except Exception as exc:
            log.warning("webhooks: publish failed: %s", type(exc).__name__)
        else:
            return
        retry_after = {"Retry-After": str(self.settings.retry_after_seconds)}
        raise RefusedError(503, "not written to Kafka; retry later", retry_after)


def create_webhook_router(
    settings: WebhookSettings,
    publisher: RawPublisher,
    registry: CollectorRegistry,
    clock: Clock = utc_now,
) -> APIRouter:
    """The webhook receiver, to mount on the ingest app. Its counter is registered on ``registry`` (once per registry).

    ``clock`` gives the ``received-at`` header and the "now" that signature timestamps are checked against.
    """
    receiver = WebhookReceiver(settings, publisher, clock)
    requests_total = Counter(
        "lessons_webhook_requests_total",
        "Webhook requests answered, by source (unknown for names we do not know) and HTTP status code",
        ["source", "status"],
        registry=registry,
    )
    configured = [name for name, check in receiver.checks.items() if check.configured]
    opened = [name for name, check in receiver.checks.items() if check.open and not check.configured]
    log.info("webhooks: credentials configured for %s", ", ".join(configured) or "no source")
    if opened:
        log.warning("webhooks: posts without credentials are accepted for %s (development only)", ", ".join(opened))

    router = APIRouter(tags=["webhooks"])

    @router.post("/webhooks/{source}", status_code=202, responses=_RESPONSES, openapi_extra=_OPENAPI_BODY)
    async def receive_webhook(source: str, request: Request) -> JSONResponse:
        """Receive one webhook from a paging or monitoring tool (``source``: pagerduty, grafana, incidentio, ...)."""
        source = source.lower()
        label = receiver.label(source)
        try:
            record_headers = await receiver.receive(source, request)
            response = JSONResponse({"delivery_id": record_headers["delivery-id"]}, status_code=202)
        except RefusedError as refused:
            log.warning("webhooks: %s refused with %d: %s", label, refused.status, refused.why)
            response = JSONResponse({"detail": refused.detail}, status_code=refused.status, headers=refused.headers)
        requests_total.labels(label, str(response.status_code)).inc()
        return response

    return router
