"""What Prometheus answered to one instant query, and Alertmanager to "which of these alerts fire now", as the judge
sees them: values or alerts, or the reason there are none.

The adapters (``services.followup.prometheus``, ``services.followup.alertmanager``) classify every failure into one of
these problems, so the judge can say ``inconclusive`` with a reason an operator can act on.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Problem(StrEnum):
    UNREACHABLE = "unreachable"  # not configured, connection refused, timed out, 5xx: retrying may help
    QUERY_ERROR = "query_error"  # Prometheus refused or failed the expression, or its answer was unusable
    NO_DATA = "no_data"  # the expression selected nothing at that time


@dataclass(frozen=True)
class Values:
    """One value per series the expression returned (a scalar is one value); empty: it selected nothing."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class NoAnswer:
    problem: Problem
    detail: str


Answer = Values | NoAnswer


@dataclass(frozen=True)
class FiringAlert:
    """One alert Alertmanager holds unresolved: firing continuously since ``starts_at``."""

    fingerprint: str
    starts_at: datetime


@dataclass(frozen=True)
class Firing:
    """The matching alerts Alertmanager reported unresolved when asked (silenced and inhibited ones included)."""

    alerts: tuple[FiringAlert, ...]


AlertsAnswer = Firing | NoAnswer
