"""The open and overdue backlog behind the gauges, with every label combination present.

Counts come from storage grouped by label values; a combination nobody counted is reported as zero, because a gauge
series that vanishes reads as "no data" rather than "none" on a dashboard. Between two counts, ``with_change`` moves
a backlog by what one stored view changed, by the same rules as the count.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas import ActionItemPriority, ReviewStatus, Severity
from services.followup.domain.projection import BEFORE_PUBLICATION, OPEN_STATUSES, ReviewView

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


def with_change(backlog: Backlog, before: ReviewView | None, after: ReviewView | None, at: datetime) -> Backlog:
    """``backlog`` once a stored view went from ``before`` to ``after`` (None: not stored), overdue judged at ``at``.

    Judged at the time the backlog was counted, so that it stays what a count at that time would give.
    """
    reviews_open = dict(backlog.reviews_open)
    reviews_overdue = dict(backlog.reviews_overdue)
    items_open = dict(backlog.action_items_open)
    items_overdue = dict(backlog.action_items_overdue)
    for sign, view in ((-1, before), (1, after)):
        if view is None or view.status not in OPEN_STATUSES:
            continue  # the count's rules: only reviews still open, and their unfinished items
        key = (view.status, view.severity)
        reviews_open[key] = reviews_open.get(key, 0) + sign
        if review_overdue(view, at):
            reviews_overdue[view.severity] = reviews_overdue.get(view.severity, 0) + sign
        for item in view.action_items:
            if item.finished:
                continue
            items_open[item.priority] = items_open.get(item.priority, 0) + sign
            if _due_by(item.due_at, at):
                items_overdue[item.priority] = items_overdue.get(item.priority, 0) + sign
    return Backlog(reviews_open, reviews_overdue, items_open, items_overdue)


def review_overdue(view: ReviewView, at: datetime) -> bool:
    """Due at or before ``at`` and not yet published (approved included): the review service's rule too, see
    docs/overdue.md."""
    return view.status in BEFORE_PUBLICATION and _due_by(view.due_at, at)


def _due_by(due_at: datetime | None, at: datetime) -> bool:
    return due_at is not None and due_at <= at
