"""Follow-up's own view of a review and its action items, built from ``reviews.events`` alone.

``apply_event`` is the only way the view changes. It is idempotent: an event whose id was seen, or whose version is
older than the view's, changes nothing. Nor does one that changes nothing follow-up keeps (an edit of the analysis, a
recurrence, recorded apart): the view stays as it is, not even taking its id or version, so it is not written again.
Besides the new view it returns the facts the change revealed (a review completed on time, an action item closed after
so long...), which the service turns into metrics; times come from the events themselves, never from a clock, so
replaying the same events gives the same facts.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from schemas import (
    ActionItemAdded,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemUpdated,
    AnyReviewEvent,
    ReviewOpened,
    ReviewRecurred,
    ReviewStatus,
    ReviewStatusChanged,
    ReviewUpdated,
    Severity,
    VerificationRecorded,
)
from schemas.verification import Verdict, VerificationPlan

# The review itself is still to be written: its own due date matters.
BEFORE_PUBLICATION = frozenset({ReviewStatus.OPEN, ReviewStatus.IN_REVIEW, ReviewStatus.APPROVED})
# A published review is still open for follow-up: its action items are being worked on until it is closed.
OPEN_STATUSES = BEFORE_PUBLICATION | {ReviewStatus.PUBLISHED}
# The review was dropped: nothing about it is followed up any more, not even the effectiveness check.
DROPPED_STATUSES = frozenset({ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED})
# Publishing (or closing without publishing) is what "completing the review" means for its due date.
COMPLETING_STATUSES = frozenset({ReviewStatus.PUBLISHED, ReviewStatus.CLOSED})
FINISHED_ITEM_STATUSES = frozenset({ActionItemStatus.DONE, ActionItemStatus.WONT_DO})

# Enough to recognise a redelivered event: redeliveries follow shortly after the original.
SEEN_EVENT_IDS_KEPT = 32


@dataclass(frozen=True)
class ActionItemView:
    action_item_id: str
    title: str
    priority: ActionItemPriority
    status: ActionItemStatus
    owner: str | None
    due_at: datetime | None
    due_set_at: datetime  # when the current due date was set: reminders before it would be noise
    added_at: datetime
    closed_at: datetime | None = None
    verification: VerificationPlan | None = None
    # The last final verdict (effective or not_effective) recorded for the current plan and completion, if any.
    verdict: Verdict | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_ITEM_STATUSES


@dataclass(frozen=True)
class ReviewView:
    review_id: str
    incident_key: str
    title: str
    severity: Severity
    status: ReviewStatus
    owner: str | None
    team: str | None
    service: str | None
    due_at: datetime | None
    due_set_at: datetime
    opened_at: datetime
    incident_started_at: datetime | None
    incident_resolved_at: datetime
    version: int
    completed_at: datetime | None = None
    action_items: tuple[ActionItemView, ...] = ()
    seen_event_ids: tuple[str, ...] = ()

    def item(self, action_item_id: str) -> ActionItemView | None:
        return next((item for item in self.action_items if item.action_item_id == action_item_id), None)

    def all_items_done_at(self) -> datetime | None:
        """When the last action item was finished, if all are and at least one was done (not just dropped)."""
        items = self.action_items
        if not items or not all(item.finished for item in items):
            return None
        if not any(item.status is ActionItemStatus.DONE for item in items):
            return None
        return max(item.closed_at or item.added_at for item in items)


# Facts: what a change revealed, for the metrics.


@dataclass(frozen=True)
class ReviewTracked:
    severity: Severity
    status: ReviewStatus
    incident_duration_seconds: float | None


@dataclass(frozen=True)
class ReviewCompleted:
    severity: Severity
    seconds_since_resolved: float
    on_time: bool


@dataclass(frozen=True)
class ActionItemTracked:
    priority: ActionItemPriority


@dataclass(frozen=True)
class ActionItemClosed:
    priority: ActionItemPriority
    status: ActionItemStatus
    seconds_open: float


@dataclass(frozen=True)
class RemediationJudged:
    """Review recorded a final verdict (effective or not) on an action item's remediation."""

    severity: Severity
    verdict: Verdict


Fact = ReviewTracked | ReviewCompleted | ActionItemTracked | ActionItemClosed | RemediationJudged


class Outcome(StrEnum):
    TRACKED = "tracked"
    DUPLICATE = "duplicate"  # this event id was applied already
    STALE = "stale"  # the view already reflects a newer version
    IGNORED = "ignored"  # about a review follow-up never saw opened
    UNCHANGED = "unchanged"  # applied, but it changes nothing follow-up keeps: the view stays as stored


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    view: ReviewView | None
    facts: tuple[Fact, ...] = ()


def apply_event(view: ReviewView | None, event: AnyReviewEvent) -> Applied:
    """The view after ``event``, or the same view with the reason it was left alone."""
    event = _at_stored_precision(event)
    event_id = str(event.event_id)
    if view is None:
        if isinstance(event, ReviewOpened):
            return _opened(event)
        return Applied(Outcome.IGNORED, None)
    if event_id in view.seen_event_ids:
        return Applied(Outcome.DUPLICATE, view)
    # One change may be announced by several events of the same version (a recurring review's ReviewOpened and
    # ReviewRecurred both carry version 1): an unseen event of the view's version is applied, an older one is not.
    if event.version < view.version:
        return Applied(Outcome.STALE, view)
    changed, facts = _changed(view, event)
    if changed == view and not facts:
        # Applying it again changes nothing either, so it needs no seen id; and leaving the version as it is matters
        # only to an older event arriving after this one, which a partition's order excludes (a redelivered older
        # event was seen, or is older than a change stored since, or changes nothing itself).
        return Applied(Outcome.UNCHANGED, view)
    seen = (*view.seen_event_ids, event_id)[-SEEN_EVENT_IDS_KEPT:]
    return Applied(Outcome.TRACKED, replace(changed, version=event.version, seen_event_ids=seen), facts)


def _at_stored_precision(event: AnyReviewEvent) -> AnyReviewEvent:
    """The event with its times cut to milliseconds, the precision MongoDB stores.

    A view read back must plan exactly the timer ids the view it was saved from planned (ids name deadlines).
    """
    cut = {
        name: value.replace(microsecond=value.microsecond // 1000 * 1000)
        for name, value in event
        if isinstance(value, datetime) and value.microsecond % 1000
    }
    return event.model_copy(update=cut) if cut else event


def _opened(event: ReviewOpened) -> Applied:
    view = ReviewView(
        review_id=event.review_id,
        incident_key=event.incident_key,
        title=event.title,
        severity=event.severity,
        status=event.status,
        owner=event.owner,
        team=event.team,
        service=event.service,
        due_at=event.due_at,
        due_set_at=event.occurred_at,
        opened_at=event.occurred_at,
        incident_started_at=event.incident_started_at,
        incident_resolved_at=event.incident_resolved_at,
        version=event.version,
        seen_event_ids=(str(event.event_id),),
    )
    duration = (
        (event.incident_resolved_at - event.incident_started_at).total_seconds()
        if event.incident_started_at is not None
        else None
    )
    return Applied(Outcome.TRACKED, view, (ReviewTracked(event.severity, event.status, duration),))


def _changed(view: ReviewView, event: AnyReviewEvent) -> tuple[ReviewView, tuple[Fact, ...]]:
    if isinstance(event, ReviewOpened):
        # A newer ReviewOpened for a known review (a re-announcement): refresh what it states, keep the items.
        return replace(
            view,
            title=event.title,
            severity=event.severity,
            status=event.status,
            owner=event.owner,
            team=event.team,
            service=event.service,
            due_at=event.due_at,
            due_set_at=event.occurred_at if event.due_at != view.due_at else view.due_set_at,
        ), ()
    if isinstance(event, ReviewUpdated):
        return _updated(view, event), ()
    if isinstance(event, ReviewStatusChanged):
        return _status_changed(view, event)
    if isinstance(event, ActionItemAdded | ActionItemUpdated):
        return _item_changed(view, event)
    if isinstance(event, ReviewRecurred):
        # Nothing of the view: counted by review, which links the recurrence (lessons_review_recurrences_total), and
        # recorded for the earlier review's verifications in ``followup_recurrences``.
        return view, ()
    if isinstance(event, VerificationRecorded):
        return _verification_recorded(view, event)
    raise AssertionError(f"unhandled review event {type(event).__name__}")  # pragma: no cover


def _updated(view: ReviewView, event: ReviewUpdated) -> ReviewView:
    # Only what ``changed`` names is taken: an edit of the analysis says nothing about the owner or due date.
    owner = event.owner if "owner" in event.changed else view.owner
    due_at = event.due_at if "due_at" in event.changed else view.due_at
    due_set_at = event.occurred_at if due_at != view.due_at else view.due_set_at
    return replace(view, owner=owner, due_at=due_at, due_set_at=due_set_at)


def _status_changed(view: ReviewView, event: ReviewStatusChanged) -> tuple[ReviewView, tuple[Fact, ...]]:
    completes = (
        view.completed_at is None
        and event.to_status in COMPLETING_STATUSES
        and view.status not in DROPPED_STATUSES
        and view.status not in COMPLETING_STATUSES
    )
    if not completes:
        return replace(view, status=event.to_status), ()
    on_time = view.due_at is None or event.occurred_at <= view.due_at
    fact = ReviewCompleted(
        severity=view.severity,
        seconds_since_resolved=(event.occurred_at - view.incident_resolved_at).total_seconds(),
        on_time=on_time,
    )
    return replace(view, status=event.to_status, completed_at=event.occurred_at), (fact,)


def _item_changed(view: ReviewView, event: ActionItemAdded | ActionItemUpdated) -> tuple[ReviewView, tuple[Fact, ...]]:
    # The event carries the item's whole current state, so an update for an item never seen adds it.
    before = view.item(event.action_item_id)
    facts: list[Fact] = []
    if before is None:
        facts.append(ActionItemTracked(event.priority))
        before = ActionItemView(
            action_item_id=event.action_item_id,
            title=event.title,
            priority=event.priority,
            status=ActionItemStatus.OPEN,
            owner=event.owner,
            due_at=event.due_at,
            due_set_at=event.occurred_at,
            added_at=event.occurred_at,
        )
    finished_now = event.status in FINISHED_ITEM_STATUSES
    closed_at = before.closed_at
    if finished_now and not before.finished:
        closed_at = event.occurred_at
        facts.append(ActionItemClosed(event.priority, event.status, (closed_at - before.added_at).total_seconds()))
    elif not finished_now:
        closed_at = None
    # A verdict is about one plan and one completion: a new plan, or an item no longer done, needs a new one.
    verdict = before.verdict if event.verification == before.verification and event.status is before.status else None
    after = replace(
        before,
        verification=event.verification,
        verdict=verdict,
        title=event.title,
        priority=event.priority,
        status=event.status,
        owner=event.owner,
        due_at=event.due_at,
        due_set_at=event.occurred_at if event.due_at != before.due_at else before.due_set_at,
        closed_at=closed_at,
    )
    return replace(view, action_items=_with_item(view.action_items, after)), tuple(facts)


def _verification_recorded(view: ReviewView, event: VerificationRecorded) -> tuple[ReviewView, tuple[Fact, ...]]:
    """A final verdict ends follow-up's evaluations of the item (pending ones are cancelled); inconclusive does not."""
    item = view.item(event.action_item_id)
    if item is None or event.verdict is Verdict.INCONCLUSIVE:
        return view, ()
    judged = replace(view, action_items=_with_item(view.action_items, replace(item, verdict=event.verdict)))
    return judged, (RemediationJudged(view.severity, event.verdict),)


def _with_item(items: tuple[ActionItemView, ...], item: ActionItemView) -> tuple[ActionItemView, ...]:
    """The items with ``item`` in its place (or appended, when new): the order items were added in is kept."""
    if any(existing.action_item_id == item.action_item_id for existing in items):
        return tuple(item if existing.action_item_id == item.action_item_id else existing for existing in items)
    return (*items, item)
