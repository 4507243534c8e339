"""The open and overdue backlog behind the gauges, with every label combination present.

Counts come from storage grouped by label values; a combination nobody counted is reported as zero, because a gauge
series that vanishes reads as "no data" rather than "none" on a dashboard.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from schemas import ActionItemPriority, ReviewStatus, Severity
from services.followup.domain.projection import OPEN_STATUSES

# In the order a review goes through them, so the gauge's series are listed in that order too.
_OPEN_STATUS_ORDER = tuple(status for status in ReviewStatus if status in OPEN_STATUSES)


@dataclass(frozen=True)
class Backlog:
    reviews_open: dict[tuple[ReviewStatus, Severity], int]
    reviews_overdue: dict[Severity, int]
    action_items_open: dict[ActionItemPriority, int]
    action_items_overdue: dict[ActionItemPriority, int]


def backlog_from_counts(
    *,
    reviews_open: Mapping[tuple[str, str], int],
    reviews_overdue: Mapping[str, int],
    action_items_open: Mapping[str, int],
    action_items_overdue: Mapping[str, int],
) -> Backlog:
    """Counted values keyed by label strings (``(status, severity)``, ``severity``, ``priority``), zero-filled."""
    return Backlog(
        reviews_open={
            (status, severity): reviews_open.get((status.value, severity.value), 0)
            for status in _OPEN_STATUS_ORDER
            for severity in Severity
        },
        reviews_overdue={severity: reviews_overdue.get(severity.value, 0) for severity in Severity},
        action_items_open={priority: action_items_open.get(priority.value, 0) for priority in ActionItemPriority},
        action_items_overdue={priority: action_items_overdue.get(priority.value, 0) for priority in ActionItemPriority},
    )
