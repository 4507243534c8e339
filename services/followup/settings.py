"""Follow-up configuration: shared connection settings plus ``FOLLOWUP_``-prefixed ones.

Durations accept seconds or ISO 8601 (``P2D``, ``PT12H``); lists are JSON, e.g.
``FOLLOWUP_REMINDERS_BEFORE='["P2D", "P1D"]'`` and
``FOLLOWUP_ESCALATION_LEVELS='[{"after": "P2D", "target": "team_lead"}, {"after": "P7D", "target": "management"}]'``.
"""

import os
import socket
from datetime import timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import ActionItemPriority, dlq_topic_for
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings
from servicekit.service_settings import ServiceSettings
from services.followup.domain.policy import EscalationLevel, FollowupPolicy
from services.followup.domain.verification import Timing, VerificationPolicy

__all__ = [
    "AlertmanagerSettings",
    "FollowupSettings",
    "JudgeServerSettings",
    "KafkaSettings",
    "MongoSettings",
    "PrometheusSettings",
]


class EscalationLevelSetting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    after: timedelta
    target: str = Field(min_length=1)


def _replica_id() -> str:
    # Names the lease holder in the timers collection: enough to tell replicas apart when reading it.
    return f"{socket.gethostname()}-{os.getpid()}"


class VerificationTimingSetting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stabilisation: timedelta
    window: timedelta


def _default_verification_timings() -> dict[ActionItemPriority, VerificationTimingSetting]:
    return {
        priority: VerificationTimingSetting(stabilisation=timing.stabilisation, window=timing.window)
        for priority, timing in VerificationPolicy().timings.items()
    }


class FollowupSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_")

    review_events_topic: str = "reviews.events"
    events_topic: str = "followups.events"
    group_id: str = "lessons-followup"
    http_port: int = Field(default=8083, ge=1, le=65_535)

    reminders_before: tuple[timedelta, ...] = (timedelta(days=2), timedelta(days=1))
    escalation_levels: tuple[EscalationLevelSetting, ...] = (
        EscalationLevelSetting(after=timedelta(days=2), target="team_lead"),
        EscalationLevelSetting(after=timedelta(days=7), target="management"),
    )
    effectiveness_check_after: timedelta = timedelta(days=30)

    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # The backlog gauges are counted in MongoDB at most this often (at a sweep); between counts they move by what
    # each batch changed, so a batch's cost does not grow with the stored reviews.
    backlog_recount_seconds: float = Field(default=60.0, gt=0)
    # How long a replica may hold a due timer before another one takes it over (it died mid-fire): far longer
    # than a publish takes, so a slow but live replica is not doubled.
    lease_seconds: float = Field(default=60.0, gt=0)
    sweep_batch_size: int = Field(default=200, ge=1)
    replica_id: str = Field(default_factory=_replica_id, min_length=1)

    # Remediation verification: per-priority defaults where an item's plan sets no stabilisation or window, e.g.
    # FOLLOWUP_VERIFICATION_TIMINGS='{"critical": {"stabilisation": "P1D", "window": "P7D"}}' (others keep theirs).
    verification_timings: dict[ActionItemPriority, VerificationTimingSetting] = Field(
        default_factory=_default_verification_timings
    )
    verification_evaluation_delay: timedelta = timedelta(minutes=2)
    verification_retry_first: timedelta = timedelta(minutes=5)
    verification_retry_max: timedelta = timedelta(hours=6)

    @model_validator(mode="after")
    def _policy_is_valid(self) -> "FollowupSettings":
        self.policy()  # raises with the reason at start-up rather than at the first event
        self.verification_policy()
        return self

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.review_events_topic)

    def policy(self) -> FollowupPolicy:
        return FollowupPolicy(
            reminders_before=tuple(self.reminders_before),
            escalation_levels=tuple(
                EscalationLevel(after=level.after, target=level.target) for level in self.escalation_levels
            ),
            effectiveness_check_after=self.effectiveness_check_after,
        )

    def verification_policy(self) -> VerificationPolicy:
        return VerificationPolicy(
            # A priority the setting leaves out keeps its default.
            timings={
                priority: Timing(stabilisation=timing.stabilisation, window=timing.window)
                for priority, timing in {**_default_verification_timings(), **self.verification_timings}.items()
            },
            evaluation_delay=self.verification_evaluation_delay,
            retry_first=self.verification_retry_first,
            retry_max=self.verification_retry_max,
        )


class JudgeServerSettings(BaseSettings):
    """A server follow-up asks to judge remediations: where it is, how to authenticate, how long and how much to read.

    Queries go to ``url`` and nowhere else, and redirects are not followed. Each judge's settings are these under
    its own prefix.
    """

    # Scheme, host and any path prefix (e.g. https://prometheus.example/prom), without query or fragment.
    url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # An answer larger than this is refused (an expression that selects thousands of series is a mistake).
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    def setting(self, name: str) -> str:
        """The environment variable of one of these settings, e.g. ``FOLLOWUP_PROMETHEUS_URL`` for ``URL``."""
        return f"{self.model_config.get('env_prefix', '')}{name}"

    @model_validator(mode="after")
    def _one_kind_of_auth(self) -> Self:
        if self.bearer_token is not None and (self.username is not None or self.password is not None):
            raise ValueError(f"set either {self.setting('BEARER_TOKEN')} or a username and password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError(f"basic auth needs both {self.setting('USERNAME')} and {self.setting('PASSWORD')}")
        return self


class PrometheusSettings(JudgeServerSettings):
    """The one Prometheus server remediation checks query (``FOLLOWUP_PROMETHEUS_`` settings).

    The expression travels in the request body. Unset, metric and alert verifications stay ``inconclusive`` with that
    reason (and are retried).
    """

    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_PROMETHEUS_")


class AlertmanagerSettings(JudgeServerSettings):
    """An Alertmanager that alert verifications also ask (``FOLLOWUP_ALERTMANAGER_`` settings); optional.

    Its API (``GET /api/v2/alerts``) tells which alerts are unresolved now, not what fired over a window: an alert it
    reports firing since before a window's end proves the alert fired during the window; "none" proves nothing, so
    absence is still judged from Prometheus' ``ALERTS``. Unset, only Prometheus is asked.
    """

    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_ALERTMANAGER_")
