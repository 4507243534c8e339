"""What Prometheus answered to one instant query, as the judge sees it: values, or the reason there are none.

The adapter (``services.followup.prometheus``) classifies every failure into one of these problems, so the judge can
say ``inconclusive`` with a reason an operator can act on.
"""

from dataclasses import dataclass
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
