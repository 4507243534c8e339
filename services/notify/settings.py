"""Notify configuration: shared connection settings plus ``NOTIFY_``-prefixed ones.

Secrets (``NOTIFY_SMTP_PASSWORD``, ``NOTIFY_WEBHOOK_URLS``: a webhook URL is a credential) are ``SecretStr``: never
printed, never logged, never stored in MongoDB. Webhook URLs must be https unless ``NOTIFY_ALLOW_HTTP_WEBHOOKS`` is
set (local testing only).
"""

import json
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from schemas import dlq_topic_for
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings
from servicekit.service_settings import ServiceSettings
from services.notify.domain.routing import ChannelName

__all__ = ["KafkaSettings", "MongoSettings", "NotifySettings"]

URL_PATTERN = r"^https?://[^\s?#]+$"


def _replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    followup_events_topic: str = "followups.events"
    review_events_topic: str = "reviews.events"
    group_id: str = "lessons-notify"
    http_port: int = Field(default=8084, ge=1, le=65_535)

    # The routing file (see docs/notify.md); unset, nobody is configured and nothing is sent.
    routing_file: Path | None = None
    # Links: the review's UI page when the UI's base is set, else its API resource.
    review_ui_base_url: str | None = Field(default=None, pattern=URL_PATTERN)
    review_api_base_url: str = Field(default="http://127.0.0.1:8082", pattern=URL_PATTERN)

    # Email over SMTP; unset host, email is off (deliveries by email are counted as not configured).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    # starttls: upgrade a plain connection (port 587); tls: TLS from the start (port 465); none: local testing only.
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="incident-lessons@localhost", pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # A CA bundle to trust for the SMTP server's certificate (a private relay); unset, the system's CAs.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # JSON {"<chat destination name>": "<incoming webhook URL>"}: credentials, so a secret.
    webhook_urls: SecretStr = SecretStr("{}")
    allow_http_webhooks: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # A message that fails is tried again after backoff * 2^(attempt-1) (at most max_backoff), up to max attempts,
    # then dead-lettered. A refusal that retrying cannot change (a rejected address, a 4xx) is dead-lettered at once.
    delivery_max_attempts: int = Field(default=5, ge=1, le=50)
    delivery_backoff_seconds: float = Field(default=30.0, ge=0, le=3600)
    delivery_max_backoff_seconds: float = Field(default=3600.0, ge=0)
    dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    dispatch_batch_size: int = Field(default=50, ge=1, le=1000)
    # How long a replica may hold a message it is sending before another takes it over (it died mid-send): longer
    # than the slowest send (SMTP and webhook time-outs, a few attempts' worth).
    lease_seconds: float = Field(default=120.0, gt=0)
    # Events published longer ago than this are not delivered (a fresh consumer group reads topics from the start).
    max_event_age: timedelta = timedelta(days=7)
    replica_id: str = Field(default_factory=_replica_id, min_length=1)

    @model_validator(mode="after")
    def _valid_secrets(self) -> "NotifySettings":
        self.webhooks()  # raises at start-up, naming the destination but never the URL
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("NOTIFY_SMTP_USERNAME and NOTIFY_SMTP_PASSWORD go together")
        if self.smtp_username is not None and self.smtp_security == "none":
            raise ValueError("SMTP authentication needs NOTIFY_SMTP_SECURITY starttls or tls: never a clear password")
        return self

    def webhooks(self) -> dict[str, SecretStr]:
        try:
            configured = json.loads(self.webhook_urls.get_secret_value())
        except json.JSONDecodeError:
            raise ValueError("NOTIFY_WEBHOOK_URLS is not valid JSON (a mapping of name to URL)") from None
        if not isinstance(configured, dict) or not all(isinstance(v, str) for v in configured.values()):
            raise ValueError("NOTIFY_WEBHOOK_URLS must map destination names to URL strings")
        allowed = ("https", "http") if self.allow_http_webhooks else ("https",)
        for name, url in configured.items():
            parts = urlsplit(url)
            if parts.scheme not in allowed or not parts.hostname:
                raise ValueError(
                    f"NOTIFY_WEBHOOK_URLS[{name!r}] must be an https URL"
                    + ("" if self.allow_http_webhooks else " (http only with NOTIFY_ALLOW_HTTP_WEBHOOKS, for testing)")
                )
        return {name: SecretStr(url) for name, url in configured.items()}

    @property
    def link_base(self) -> str:
        """Where a review's link points: its web UI page when the UI's address is known, else its API resource."""
        if self.review_ui_base_url:
            return f"{self.review_ui_base_url.rstrip('/')}/review"
        return f"{self.review_api_base_url.rstrip('/')}/reviews"

    @property
    def channels(self) -> frozenset[ChannelName]:
        enabled: set[ChannelName] = {"chat"}
        if self.smtp_host:
            enabled.add("email")
        return frozenset(enabled)

    def dlq_topic(self, topic: str) -> str:
        return dlq_topic_for(topic)
