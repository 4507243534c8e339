"""Timer planning: given follow-up's view of a review and the policy, the set of timers that should exist.

Pure and deterministic, so the adapter only has to reconcile MongoDB to this set: insert what is missing, delete
unfired timers that are no longer planned, never touch fired ones. A timer's id names the review, the kind, the
subject, the level and the deadline it is about (``<review_id>:<kind>:<subject>:<level>@<deadline>``): a moved due
date is a new deadline and so new timers (the old unfired ones are deleted), while a timer that already fired for a
deadline is never planned anew. Each timer carries the event its firing publishes, with an event id derived from
the timer id and ``occurred_at`` set to the time it is due, so whoever fires it publishes the same event.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from schemas import (
    ActionItemOverdue,
    ActionItemStatus,
    AnyFollowupEvent,
    EffectivenessCheckDue,
    Escalated,
    ReminderDue,
    ReviewOverdue,
    followup_event_id,
)
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import (
    BEFORE_PUBLICATION,
    DROPPED_STATUSES,
    OPEN_STATUSES,
    ActionItemView,
    ReviewView,
)

Subject = Literal["review", "action_item"]


class TimerKind(StrEnum):
    REMINDER = "reminder"
    OVERDUE = "overdue"
    ESCALATION = "escalation"
    EFFECTIVENESS_CHECK = "effectiveness_check"


@dataclass(frozen=True)
class PlannedTimer:
    timer_id: str
    review_id: str
    kind: TimerKind
    subject: Subject
    level: int  # the escalation level (1, 2...); 0 for the other kinds
    due_at: datetime  # when it fires
    event: AnyFollowupEvent  # what its firing publishes
    # Not fired by then (follow-up was down, or the review was replayed late), it is dropped unsent: its moment has
    # passed. A reminder after the due date, or an escalation once the next level is due, would only add noise.
    expires_at: datetime | None = None


def plan_timers(view: ReviewView, policy: FollowupPolicy) -> tuple[PlannedTimer, ...]:
    """Every timer that should exist for this review now, in the order they fall due."""
    timers: list[PlannedTimer] = []
    if view.status in BEFORE_PUBLICATION and view.due_at is not None:
        timers.extend(_deadline_timers(view, None, view.due_at, view.due_set_at, policy))
    if view.status in OPEN_STATUSES:
        for item in view.action_items:
            if not item.finished and item.due_at is not None:
                timers.extend(_deadline_timers(view, item, item.due_at, item.due_set_at, policy))
    done_at = view.all_items_done_at()
    # A closed review still gets its effectiveness check: asking whether the changes worked comes after closing.
    if view.status not in DROPPED_STATUSES and done_at is not None:
        timers.append(_effectiveness_check(view, done_at, policy.effectiveness_check_after))
    return tuple(sorted(timers, key=lambda timer: (timer.due_at, timer.timer_id)))


def timer_id(review_id: str, kind: TimerKind, subject: str, level: str, deadline: datetime) -> str:
    return f"{review_id}:{kind.value}:{subject}:{level}@{_compact(deadline)}"


def _deadline_timers(
    view: ReviewView,
    item: ActionItemView | None,
    deadline: datetime,
    deadline_set_at: datetime,
    policy: FollowupPolicy,
) -> Iterator[PlannedTimer]:
    subject: Subject = "review" if item is None else "action_item"
    subject_key = "review" if item is None else f"item.{item.action_item_id}"
    owner = view.owner if item is None else item.owner
    about_item = {
        "action_item_id": None if item is None else item.action_item_id,
        "action_item_title": None if item is None else item.title,
        "priority": None if item is None else item.priority,
    }
    for lead in policy.reminders_before:
        fires_at = deadline - lead
        # A "2 days before" reminder for a deadline set 1 day ahead would be noise: only reminders still ahead
        # when the deadline was set are planned.
        if fires_at <= deadline_set_at:
            continue
        tid = timer_id(view.review_id, TimerKind.REMINDER, subject_key, _duration(lead), deadline)
        event: AnyFollowupEvent = ReminderDue.model_validate(
            {
                **_common(view, tid, fires_at, owner),
                **about_item,
                "subject": subject,
                "due_at": deadline,
                "before_seconds": int(lead.total_seconds()),
            }
        )
        yield PlannedTimer(tid, view.review_id, TimerKind.REMINDER, subject, 0, fires_at, event, expires_at=deadline)

    tid = timer_id(view.review_id, TimerKind.OVERDUE, subject_key, "0", deadline)
    if item is None:
        event = ReviewOverdue.model_validate({**_common(view, tid, deadline, owner), "due_at": deadline})
    else:
        event = ActionItemOverdue.model_validate(
            {**_common(view, tid, deadline, owner), **about_item, "due_at": deadline}
        )
    yield PlannedTimer(tid, view.review_id, TimerKind.OVERDUE, subject, 0, deadline, event)

    levels = policy.escalation_levels
    for level, escalation in enumerate(levels, start=1):
        fires_at = deadline + escalation.after
        expires_at = deadline + levels[level].after if level < len(levels) else None
        tid = timer_id(view.review_id, TimerKind.ESCALATION, subject_key, str(level), deadline)
        event = Escalated.model_validate(
            {
                **_common(view, tid, fires_at, owner),
                **about_item,
                "subject": subject,
                "level": level,
                "target": escalation.target,
                "due_at": deadline,
                "overdue_seconds": int(escalation.after.total_seconds()),
            }
        )
        yield PlannedTimer(tid, view.review_id, TimerKind.ESCALATION, subject, level, fires_at, event, expires_at)


def _effectiveness_check(view: ReviewView, done_at: datetime, after: timedelta) -> PlannedTimer:
    fires_at = done_at + after
    tid = timer_id(view.review_id, TimerKind.EFFECTIVENESS_CHECK, "review", "0", done_at)
    event = EffectivenessCheckDue.model_validate(
        {
            **_common(view, tid, fires_at, view.owner),
            "action_items_done_at": done_at,
            "after_seconds": int(after.total_seconds()),
            "done_action_item_ids": tuple(
                item.action_item_id for item in view.action_items if item.status is ActionItemStatus.DONE
            ),
        }
    )
    return PlannedTimer(tid, view.review_id, TimerKind.EFFECTIVENESS_CHECK, "review", 0, fires_at, event)


def _common(view: ReviewView, tid: str, fires_at: datetime, owner: str | None) -> dict[str, object]:
    return {
        "event_id": followup_event_id(tid),
        "occurred_at": fires_at,
        "review_id": view.review_id,
        "timer_id": tid,
        "incident_key": view.incident_key,
        "title": view.title,
        "severity": view.severity,
        "team": view.team,
        "owner": owner,
    }


def _compact(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return f"{utc:%Y%m%dT%H%M%S}{fraction}Z"


def _duration(lead: timedelta) -> str:
    """``2d``, ``36h``, ``90m``, ``45s``: the largest unit that states the lead exactly, for readable timer ids."""
    seconds = int(lead.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
