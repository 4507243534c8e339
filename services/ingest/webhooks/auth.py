"""Who may post to ``/webhooks/{source}``: the credential checks configured for each source, in two phases.

Every check configured for a source must pass (a Grafana contact point may sign *and* send basic auth). A source with
no check configured is refused, unless the settings open it explicitly for local development.

Phase one (``check_headers``) needs no body: the ``Authorization`` header, and that a signature was sent at all, so an
unauthenticated caller is turned away before the receiver reads what it sent. Phase two (``check_signature``) verifies
the signature over the raw body.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import SecretStr

from schemas import SOURCES
from services.ingest.webhooks import signatures
from services.ingest.webhooks.settings import WebhookSettings
from services.ingest.webhooks.signatures import Verdict

Headers = Mapping[str, str]  # looked up with lower-case names (Starlette's Headers ignore case)


class Signature(Protocol):
    def present(self, headers: Headers) -> bool: ...

    def verify(self, headers: Headers, body: bytes, now: datetime) -> Verdict: ...


@dataclass(frozen=True)
class PagerDutySignature:
    secrets: tuple[bytes, ...] = field(repr=False)

    def present(self, headers: Headers) -> bool:
        return bool(headers.get("x-pagerduty-signature", "").strip())

    def verify(self, headers: Headers, body: bytes, now: datetime) -> Verdict:
        return signatures.pagerduty(body, headers.get("x-pagerduty-signature"), self.secrets)


@dataclass(frozen=True)
class GrafanaSignature:
    secrets: tuple[bytes, ...] = field(repr=False)
    header: str
    timestamp_header: str
    tolerance: timedelta
    require_timestamp: bool = False

    def present(self, headers: Headers) -> bool:
        return bool(headers.get(self.header.lower(), "").strip())

    def verify(self, headers: Headers, body: bytes, now: datetime) -> Verdict:
        return signatures.grafana(
            body,
            headers.get(self.header.lower()),
            headers.get(self.timestamp_header.lower()),
            self.secrets,
            now=now,
            tolerance=self.tolerance,
            require_timestamp=self.require_timestamp,
        )


def _svix_header(headers: Headers, name: str) -> str | None:
    """Standard Webhooks names (``webhook-*``), else Svix's own (``svix-*``), as the Svix libraries accept both."""
    return headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")


@dataclass(frozen=True)
class SvixSignature:
    keys: tuple[bytes, ...] = field(repr=False)
    tolerance: timedelta

    def present(self, headers: Headers) -> bool:
        return bool((_svix_header(headers, "signature") or "").strip())

    def verify(self, headers: Headers, body: bytes, now: datetime) -> Verdict:
        return signatures.svix(
            body,
            _svix_header(headers, "id"),
            _svix_header(headers, "timestamp"),
            _svix_header(headers, "signature"),
            self.keys,
            now=now,
            tolerance=self.tolerance,
        )


@dataclass(frozen=True)
class SourceAuth:
    """The checks for one source. ``open`` only matters when nothing is configured."""

    source: str
    bearer_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    basic_credentials: tuple[bytes, ...] = field(default=(), repr=False)
    signature: Signature | None = None
    open: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.bearer_tokens or self.basic_credentials or self.signature)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        scheme = "Basic" if self.basic_credentials and not self.bearer_tokens else "Bearer"
        return f'{scheme} realm="incident-lessons webhooks"'

    def check_headers(self, headers: Headers) -> Verdict:
        if not self.configured:
            return Verdict.VALID if self.open else Verdict.MISSING
        verdicts = []
        if self.bearer_tokens or self.basic_credentials:
            verdicts.append(
                signatures.authorization(headers.get("authorization"), self.bearer_tokens, self.basic_credentials)
            )
        if self.signature is not None and not self.signature.present(headers):
            verdicts.append(Verdict.MISSING)
        return signatures.combine(verdicts)

    def check_signature(self, headers: Headers, body: bytes, now: datetime) -> Verdict:
        if self.signature is None:
            return Verdict.VALID
        return self.signature.verify(headers, body, now)


def _raw(secrets: list[SecretStr]) -> tuple[bytes, ...]:
    return tuple(secret.get_secret_value().strip().encode() for secret in secrets)


def source_auth(settings: WebhookSettings) -> dict[str, SourceAuth]:
    """The checks for every known source, from the settings."""
    tolerance = timedelta(seconds=settings.signature_tolerance_seconds)
    signing: dict[str, Signature] = {}
    if settings.pagerduty_secrets:
        signing["pagerduty"] = PagerDutySignature(_raw(settings.pagerduty_secrets))
    if settings.grafana_secrets:
        signing["grafana"] = GrafanaSignature(
            _raw(settings.grafana_secrets),
            header=settings.grafana_signature_header,
            timestamp_header=settings.grafana_timestamp_header,
            tolerance=tolerance,
            require_timestamp=settings.grafana_require_timestamp,
        )
    if settings.incidentio_secrets:
        keys = tuple(signatures.svix_key(secret.get_secret_value()) for secret in settings.incidentio_secrets)
        signing["incidentio"] = SvixSignature(keys, tolerance)
    return {
        source: SourceAuth(
            source=source,
            bearer_tokens=_raw(settings.bearer_tokens.get(source, [])),
            basic_credentials=_raw(settings.basic_auth.get(source, [])),
            signature=signing.get(source),
            open=source in settings.allow_unauthenticated,
        )
        for source in SOURCES
    }
