"""Review configuration: shared connection settings plus ``REVIEW_``-prefixed ones."""

from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from schemas import dlq_topic_for
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings
from servicekit.service_settings import ServiceSettings

__all__ = ["KafkaSettings", "MongoSettings", "ReviewSettings"]

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "policy.default.yaml"


class ReviewSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_")

    closed_topic: str = "incidents.closed"
    events_topic: str = "reviews.events"
    group_id: str = "lessons-review"
    # What follow-up did (reminders, overdue, escalations, verdicts), consumed in its own group.
    followups_topic: str = "followups.events"
    followups_group_id: str = "lessons-review-followups"
    http_port: int = Field(default=8082, ge=1, le=65_535)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
    # How often reviews without a list position (opened by a replica of the previous version) are given one.
    list_position_poll_seconds: float = Field(default=5.0, gt=0)
    # Publish right after a write instead of at the next poll. Off only to test what a crash before publishing does.
    outbox_wake_on_write: bool = True
    # One replica relays at a time (a lease in MongoDB), so events of one review leave in order and are not sent
    # once per replica. A relay that dies is replaced when its lease runs out.
    outbox_lease_seconds: float = Field(default=15.0, gt=0)
    policy_file: Path = DEFAULT_POLICY_FILE
    recurrence_window_days: int = Field(default=90, ge=0)
    # A transaction (statements, retries and commit) ends within this long: a review held by a crashed writer's
    # transaction costs its next writer seconds, not the server's transaction lifetime (60 s). See docs/operations.md.
    transaction_time_limit_seconds: float = Field(default=10.0, gt=0, le=120)
    # JSON: {"<token>": {"name": "...", "role": "viewer|editor|admin"}}. Secret: never printed, never logged.
    api_tokens: SecretStr = SecretStr("{}")
    # Reads without a token. Off by default: reviews name people and weaknesses. The demo turns it on.
    anonymous_reads: bool = False

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.closed_topic)

    @property
    def attempt_allowance_seconds(self) -> float:
        # Opening a review is a transaction, which may take up to its time limit before it fails.
        return max(self.transaction_time_limit_seconds, super().attempt_allowance_seconds)

    @property
    def followups_dlq_topic(self) -> str:
        return dlq_topic_for(self.followups_topic)

    # Larger request bodies are refused with 413 before they are read (Content-Length) or once the stream passes it.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Where clients reach the API (scheme, host, any path prefix a proxy adds), for the Link headers of pages.
    # Unset, links are relative: never built from the Host header a caller sends.
    public_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")

    # The web UI (docs/web-ui.md). Its session cookie is signed with this secret: set it, the same on every replica.
    # Unset, each process draws a random one at start-up: sessions end when it restarts and work on one replica only.
    web_session_secret: SecretStr | None = None
    # How long a sign-in lasts, in minutes (at most 30 days).
    web_session_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    # Trusted auth-proxy mode (SSO through oauth2-proxy, Pomerium...): off by default. When on, a request from one of
    # web_proxy_addresses carrying web_proxy_user_header is that user, with the highest role their groups (comma
    # separated in web_proxy_groups_header) map to in web_proxy_group_roles; the same headers from anywhere else are
    # ignored. JSON: addresses '["10.0.0.7/32"]', roles '{"sre-leads": "admin", "sre": "editor", "staff": "viewer"}'.
    web_proxy_auth: bool = False
    web_proxy_addresses: list[IPvAnyNetwork] = Field(default_factory=list)
    web_proxy_user_header: str = Field(default="X-Forwarded-User", min_length=1)
    web_proxy_groups_header: str = Field(default="X-Forwarded-Groups", min_length=1)
    web_proxy_group_roles: dict[str, Literal["viewer", "editor", "admin"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _proxy_mode_names_its_proxies(self) -> "ReviewSettings":
        if self.web_proxy_auth and not self.web_proxy_addresses:
            raise ValueError("REVIEW_WEB_PROXY_AUTH needs REVIEW_WEB_PROXY_ADDRESSES (the proxies to trust)")
        return self
