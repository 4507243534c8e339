"""How a remediation proves it worked: the plan an action item carries, and the verdict with its evidence.

Shared by ``reviews.events`` (the plan travels on action item events; a recorded verdict is announced) and
``followups.events`` (follow-up evaluates the plan and publishes ``RemediationVerified``).

A verdict is ``effective``, ``not_effective`` or ``inconclusive``. ``inconclusive`` means the judge could not
answer (Prometheus unreachable, a query error, no data): it is retried and never turns into ``effective`` by itself.
"""

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.base import Text, utc_datetime

MAX_QUERY_CHARS = 2_000
MAX_MATCHERS = 20


class VerificationMethod(StrEnum):
    METRIC = "metric"  # a PromQL expression compared with a threshold over a window after the change
    ALERT = "alert"  # an alert that must not fire during the window (Prometheus' ALERTS series; Alertmanager too)
    RECURRENCE = "recurrence"  # no new incident matching this review during the window
    MANUAL = "manual"  # the verifier records the verdict and the evidence


class Comparison(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="


class Verdict(StrEnum):
    EFFECTIVE = "effective"
    NOT_EFFECTIVE = "not_effective"
    INCONCLUSIVE = "inconclusive"


class VerificationPlan(BaseModel):
    """What an action item promises to prove, and who checks it (may differ from the owner)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: VerificationMethod
    verifier: Text | None = Field(default=None, max_length=200, description="Who verifies; defaults to the owner")
    window_seconds: int | None = Field(
        default=None, gt=0, description="How long after stabilisation the change is observed; default by priority"
    )
    stabilisation_seconds: int | None = Field(
        default=None, ge=0, description="Delay after the item is done before the window starts; default by priority"
    )
    query: Text | None = Field(default=None, max_length=MAX_QUERY_CHARS, description="metric: a PromQL expression")
    comparison: Comparison | None = Field(default=None, description="metric: how the value must compare")
    threshold: float | None = Field(default=None, allow_inf_nan=False, description="metric: the value to compare")
    alert_name: Text | None = Field(default=None, max_length=200, description="alert: the alert that must not fire")
    alert_matchers: dict[Text, Text] = Field(
        default_factory=dict, max_length=MAX_MATCHERS, description="alert: label matchers (equality)"
    )

    @model_validator(mode="after")
    def _fields_match_method(self) -> Self:
        metric = (self.query, self.comparison, self.threshold)
        if self.method is VerificationMethod.METRIC:
            if any(value is None for value in metric) or not (self.query or "").strip():
                raise ValueError("a metric verification needs query, comparison and threshold")
        elif any(value is not None for value in metric):
            raise ValueError("query, comparison and threshold belong to a metric verification only")
        if self.method is VerificationMethod.ALERT:
            if not (self.alert_name or "").strip():
                raise ValueError("an alert verification needs alert_name")
        elif self.alert_name is not None or self.alert_matchers:
            raise ValueError("alert_name and alert_matchers belong to an alert verification only")
        return self

    @property
    def measurable(self) -> bool:
        """Judged by the system rather than by a person: what the review policy can require."""
        return self.method is not VerificationMethod.MANUAL


class Evidence(BaseModel):
    """Why the verdict is what it is: enough for an auditor to repeat the check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: VerificationMethod
    judged_by: Text = Field(min_length=1, max_length=200, description='A person, or e.g. "followup/prometheus"')
    judged_at: utc_datetime
    window_start: utc_datetime | None = None
    window_end: utc_datetime | None = None
    expression: Text | None = Field(default=None, max_length=MAX_QUERY_CHARS + 200, description="What was asked")
    comparison: Comparison | None = None
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    baseline: float | None = Field(default=None, allow_inf_nan=False, description="The value before the change")
    observed: float | None = Field(default=None, allow_inf_nan=False, description="The value over the window")
    detail: Text = Field(default="", max_length=2_000, description="A sentence: what was found, or why no answer")
    links: tuple[Text, ...] = Field(default=(), max_length=20)
