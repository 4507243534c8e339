"""Webhook receiver configuration: ``INGEST_WEBHOOK_``-prefixed environment variables (see ``docs/webhooks.md``).

Secure by default: a source with no credential configured is refused (401) unless it is listed in
``INGEST_WEBHOOK_ALLOW_UNAUTHENTICATED``. Secrets are ``SecretStr`` (masked in reprs) and validation errors never echo
their input (``hide_input_in_errors``), so a misconfiguration does not print a secret in a traceback.

List variables take a JSON list (``["new", "old"]``, for rotations) or a single plain value; map variables take a JSON
object keyed by source name, whose values are a list or a single value.
"""

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas import SOURCES
from servicekit.broker import RECORD_LIMIT_BYTES
from services.ingest.webhooks.signatures import svix_key

Secrets = Annotated[list[SecretStr], NoDecode]
SecretsBySource = Annotated[dict[str, list[SecretStr]], NoDecode]
SourceNames = Annotated[list[str], NoDecode]

# Room under the record limit for what the receiver adds to a body: our headers (a few hundred bytes), the
# CloudEvent ce-* attributes and content type a caller chose (which HTTP servers bound to a few KiB) and the framing.
RECORD_HEADROOM_BYTES = 16 * 1024


def _one_or_many(value: Any) -> Any:
    """A JSON list, or one plain value, as a list; other types are left for pydantic to judge."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [text] if text else []
    return value


def _known_sources(names: Any, variable: str) -> None:
    unknown = sorted(str(name) for name in names if name not in SOURCES)
    if unknown:
        raise ValueError(f"{variable}: unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")


def _non_empty(secrets: list[SecretStr], variable: str) -> list[SecretStr]:
    if any(not secret.get_secret_value().strip() for secret in secrets):
        raise ValueError(f"{variable}: an empty secret would accept almost anything")
    return secrets


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_WEBHOOK_", hide_input_in_errors=True)

    # PagerDuty V3 subscription signing secrets, checked against X-PagerDuty-Signature.
    pagerduty_secrets: Secrets = Field(default_factory=list)
    # Grafana alerting contact point "HMAC Signature" secrets.
    grafana_secrets: Secrets = Field(default_factory=list)
    grafana_signature_header: str = "X-Grafana-Alerting-Signature"
    # Grafana has no default name for it: use the name you typed into the contact point.
    grafana_timestamp_header: str = "X-Grafana-Alerting-Timestamp"
    grafana_require_timestamp: bool = False
    # incident.io (Svix) endpoint signing secrets, "whsec_<base64>".
    incidentio_secrets: Secrets = Field(default_factory=list)
    # {"opsgenie": ["token"], ...}: accepted as "Authorization: Bearer <token>".
    bearer_tokens: SecretsBySource = Field(default_factory=dict)
    # {"alertmanager": ["user:password"], ...}: accepted as "Authorization: Basic <base64(user:password)>".
    basic_auth: SecretsBySource = Field(default_factory=dict)
    # Sources accepted without any credential when none is configured for them: local development only.
    allow_unauthenticated: SourceNames = Field(default_factory=list)
    # The producer's max_request_size: change both together. A record above it is refused (413), never retried.
    record_limit_bytes: int = Field(default=RECORD_LIMIT_BYTES, gt=RECORD_HEADROOM_BYTES)
    # At most record_limit_bytes - RECORD_HEADROOM_BYTES, so that an accepted body always fits in its record.
    max_body_bytes: int = Field(default=RECORD_LIMIT_BYTES - RECORD_HEADROOM_BYTES, gt=0)
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    retry_after_seconds: int = Field(default=30, ge=0)
    signature_tolerance_seconds: int = Field(default=300, gt=0)

    @field_validator(
        "pagerduty_secrets", "grafana_secrets", "incidentio_secrets", "allow_unauthenticated", mode="before"
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("bearer_tokens", "basic_auth", mode="before")
    @classmethod
    def _maps(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {source: _one_or_many(secrets) for source, secrets in value.items()}
        return value

    @field_validator("pagerduty_secrets", "grafana_secrets")
    @classmethod
    def _hmac_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        return _non_empty(secrets, "signing secrets")

    @field_validator("incidentio_secrets")
    @classmethod
    def _svix_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in _non_empty(secrets, "incidentio_secrets"):
            svix_key(secret.get_secret_value())  # fails at start-up, not on every delivery
        return secrets

    @field_validator("bearer_tokens")
    @classmethod
    def _tokens(cls, tokens: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        _known_sources(tokens, "bearer_tokens")
        for secrets in tokens.values():
            _non_empty(secrets, "bearer_tokens")
        return tokens

    @field_validator("basic_auth")
    @classmethod
    def _basic(cls, pairs: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        _known_sources(pairs, "basic_auth")
        for secrets in pairs.values():
            for pair in secrets:
                user, _, password = pair.get_secret_value().partition(":")
                if not user or not password:
                    raise ValueError("basic_auth: each value is user:password, both non-empty")
        return pairs

    @field_validator("allow_unauthenticated")
    @classmethod
    def _open(cls, names: list[str]) -> list[str]:
        names = [name.strip().lower() for name in names]
        _known_sources(names, "allow_unauthenticated")
        return names

    @model_validator(mode="after")
    def _body_fits_in_a_record(self) -> "WebhookSettings":
        largest = self.record_limit_bytes - RECORD_HEADROOM_BYTES
        if self.max_body_bytes > largest:
            raise ValueError(
                f"INGEST_WEBHOOK_MAX_BODY_BYTES is {self.max_body_bytes}: at most {largest}, which leaves "
                f"{RECORD_HEADROOM_BYTES} bytes for the record's key and headers under "
                f"INGEST_WEBHOOK_RECORD_LIMIT_BYTES ({self.record_limit_bytes}, the producer's max_request_size)"
            )
        return self
