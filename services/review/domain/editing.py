"""Edits people make to a review: sections, timeline entries, action items. Each returns the changed review (its
version one higher) and the event announcing the change, or None when the edit changes nothing, so a retried
request neither bumps the version nor announces a change twice.

Edits are partial: a field left out is left alone. A section given as a list replaces that list; ``analysis`` and
``gaps`` are merged field by field.
"""

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from schemas import (
    ActionItemAdded,
    ActionItemCategory,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemUpdated,
    ReviewUpdated,
    VerificationPlan,
)
from services.review.domain.limits import check_within_limits
from services.review.domain.record import (
    LONG_TEXT,
    MAX_ENTRIES,
    SHORT_TEXT,
    ActionItem,
    Analysis,
    ContributingFactor,
    Gaps,
    Participant,
    Review,
    ReviewTimelineEntry,
    Section,
    Statements,
    UtcTime,
    event_id_for,
    timeline_number,
)
from services.review.domain.refusals import (
    ImportedTimelineEntryError,
    InvalidEditError,
    NotEditableError,
    UnknownActionItemError,
    UnknownTimelineEntryError,
)
from services.review.domain.workflow import ACTION_ITEMS_EDITABLE, SECTIONS_EDITABLE

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LONG_TEXT)]
TicketUrl = Annotated[str, StringConstraints(max_length=2_000, pattern=r"^https?://\S+$")]
ReviewId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class AnalysisEdit(Section):
    what_went_well: Statements | None = None
    what_went_wrong: Statements | None = None
    response_effectiveness: str | None = Field(default=None, max_length=LONG_TEXT)
    detection_and_prevention: str | None = Field(default=None, max_length=LONG_TEXT)
    communication_and_coordination: str | None = Field(default=None, max_length=LONG_TEXT)
    resource_allocation: str | None = Field(default=None, max_length=LONG_TEXT)


class GapsEdit(Section):
    process: Statements | None = None
    technology: Statements | None = None
    training: Statements | None = None


class SectionEdit(Section):
    """The sections to change; ``null`` clears a value, a field left out stays as it is."""

    owner: Name | None = None
    due_at: UtcTime | None = None
    participants: Annotated[list[Participant], Field(max_length=MAX_ENTRIES)] | None = None
    analysis: AnalysisEdit | None = None
    gaps: GapsEdit | None = None
    contributing_factors: Annotated[list[ContributingFactor], Field(max_length=MAX_ENTRIES)] | None = None
    recommendations: Statements | None = None
    no_action_needed_reason: Reason | None = None
    related_reviews: Annotated[list[ReviewId], Field(max_length=50)] | None = None


class TimelineEntryDraft(Section):
    at: UtcTime
    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    message: str = Field(default="", max_length=LONG_TEXT)
    actor: Name | None = None


class TimelineEntryEdit(Section):
    """The fields of an added entry to change; ``at`` and ``kind`` cannot be cleared, ``actor`` can."""

    at: UtcTime | None = None
    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    message: str | None = Field(default=None, max_length=LONG_TEXT)
    actor: Name | None = None


def _reason_goes_with_wont_do(status: ActionItemStatus | None, reason: str | None) -> None:
    if status == ActionItemStatus.WONT_DO and not reason:
        raise ValueError("a reason is required when status is wont_do")


class ActionItemDraft(Section):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SHORT_TEXT)]
    description: str = Field(default="", max_length=LONG_TEXT)
    owner: Name | None = None
    due_at: UtcTime | None = None
    priority: ActionItemPriority = ActionItemPriority.MEDIUM
    category: ActionItemCategory = ActionItemCategory.OTHER
    status: ActionItemStatus = ActionItemStatus.OPEN
    status_reason: Reason | None = Field(default=None, validate_default=True)
    ticket_url: TicketUrl | None = None
    verification: VerificationPlan | None = Field(
        default=None, description="How the remediation proves it worked: metric, alert, recurrence or manual"
    )

    @field_validator("status_reason")
    @classmethod
    def _wont_do_needs_reason(cls, reason: str | None, info: Any) -> str | None:
        _reason_goes_with_wont_do(info.data.get("status"), reason)
        return reason


class ActionItemEdit(Section):
    """The action item fields to change; setting ``status`` to ``wont_do`` needs ``status_reason``."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SHORT_TEXT)] | None = None
    description: str | None = Field(default=None, max_length=LONG_TEXT)
    owner: Name | None = None
    due_at: UtcTime | None = None
    priority: ActionItemPriority | None = None
    category: ActionItemCategory | None = None
    status: ActionItemStatus | None = None
    status_reason: Reason | None = Field(default=None, validate_default=True)
    ticket_url: TicketUrl | None = None
    verification: VerificationPlan | None = Field(default=None, description="null removes the verification")

    @field_validator("status_reason")
    @classmethod
    def _wont_do_needs_reason(cls, reason: str | None, info: Any) -> str | None:
        _reason_goes_with_wont_do(info.data.get("status"), reason)
        return reason


def _require_status(review: Review, allowed: frozenset[Any], what: str) -> None:
    if review.status not in allowed:
        statuses = ", ".join(sorted(allowed))
        raise NotEditableError(f"{what} cannot be changed while the review is {review.status} (only when {statuses})")


# The record has no null for these: a null in the edit empties them.
_LISTS = ("participants", "contributing_factors", "recommendations", "related_reviews")


def edit_sections(
    review: Review, edit: SectionEdit, *, by: str | None, now: datetime
) -> tuple[Review, ReviewUpdated] | None:
    _require_status(review, SECTIONS_EDITABLE, "sections")
    if edit.related_reviews is not None and review.id in edit.related_reviews:
        raise InvalidEditError("related_reviews", "a review cannot be related to itself")
    update: dict[str, Any] = {}
    for name in edit.model_fields_set:
        value = getattr(edit, name)
        if name == "analysis":
            update[name] = _merged(review.analysis, value)
        elif name == "gaps":
            update[name] = _merged(review.gaps, value)
        elif name in _LISTS:
            update[name] = value if value is not None else []
        else:
            update[name] = value
    changed = tuple(sorted(name for name, value in update.items() if getattr(review, name) != value))
    if not changed:
        return None
    version = review.version + 1
    edited = review.model_copy(
        update={**{name: update[name] for name in changed}, "version": version, "updated_at": now, "updated_by": by}
    )
    check_within_limits(review, edited)
    event = ReviewUpdated(
        event_id=event_id_for(review.id, "updated", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        changed=changed,
        owner=edited.owner,
        due_at=edited.due_at,
    )
    return edited, event


def _merged(current: Analysis | Gaps, edit: AnalysisEdit | GapsEdit | None) -> Analysis | Gaps:
    if edit is None:  # the whole section given as null: emptied
        return type(current)()
    given = {name: getattr(edit, name) for name in edit.model_fields_set}
    # A list section given as null is emptied: lists have no null in the record.
    cleared = {
        name: ([] if value is None and isinstance(getattr(current, name), list) else value)
        for name, value in given.items()
    }
    return current.model_copy(update=cleared)


def _timeline_changed(
    review: Review, timeline: list[ReviewTimelineEntry], *, by: str | None, now: datetime
) -> tuple[Review, ReviewUpdated]:
    # Kept in time order; an added entry goes after imported ones at the same moment (sorting is stable).
    timeline = sorted(timeline, key=lambda item: item.at)
    version = review.version + 1
    edited = review.model_copy(update={"timeline": timeline, "version": version, "updated_at": now, "updated_by": by})
    check_within_limits(review, edited)
    event = ReviewUpdated(
        event_id=event_id_for(review.id, "updated", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        changed=("timeline",),
        owner=edited.owner,
        due_at=edited.due_at,
    )
    return edited, event


def add_timeline_entry(
    review: Review, draft: TimelineEntryDraft, *, by: str | None, now: datetime
) -> tuple[Review, ReviewUpdated]:
    _require_status(review, SECTIONS_EDITABLE, "the timeline")
    if len(review.timeline) >= MAX_ENTRIES * 5:
        raise InvalidEditError("timeline", f"a review holds at most {MAX_ENTRIES * 5} timeline entries")
    entry = ReviewTimelineEntry(id=f"T-{timeline_number(review.timeline) + 1}", **draft.model_dump(), origin="added")
    return _timeline_changed(review, [*review.timeline, entry], by=by, now=now)


def _added_entry(review: Review, entry_id: str) -> ReviewTimelineEntry:
    entry = review.timeline_entry(entry_id)
    if entry is None:
        raise UnknownTimelineEntryError(f"review {review.id} has no timeline entry {entry_id}")
    _require_status(review, SECTIONS_EDITABLE, "the timeline")
    if entry.origin == "imported":
        raise ImportedTimelineEntryError(
            f"timeline entry {entry_id} was imported from {review.incident.source} and is read-only: only entries "
            "people added can be changed or removed"
        )
    return entry


def edit_timeline_entry(
    review: Review, entry_id: str, edit: TimelineEntryEdit, *, by: str | None, now: datetime
) -> tuple[Review, ReviewUpdated] | None:
    """Change an entry a person added; imported entries are refused. None when nothing changes."""
    entry = _added_entry(review, entry_id)
    update: dict[str, Any] = {name: getattr(edit, name) for name in edit.model_fields_set}
    for required in ("at", "kind", "message"):
        if required in update and update[required] is None:
            raise InvalidEditError(required, "cannot be cleared")
    changed = {name: value for name, value in update.items() if getattr(entry, name) != value}
    if not changed:
        return None
    edited = entry.model_copy(update=changed)
    timeline = [edited if other.id == entry_id else other for other in review.timeline]
    return _timeline_changed(review, timeline, by=by, now=now)


def remove_timeline_entry(
    review: Review, entry_id: str, *, by: str | None, now: datetime
) -> tuple[Review, ReviewUpdated]:
    """Remove an entry a person added; imported entries are refused."""
    _added_entry(review, entry_id)
    timeline = [other for other in review.timeline if other.id != entry_id]
    return _timeline_changed(review, timeline, by=by, now=now)


def next_action_item_id(review: Review) -> str:
    numbers = [
        int(item.id.removeprefix("AI-")) for item in review.action_items if item.id.removeprefix("AI-").isdigit()
    ]
    return f"AI-{max(numbers, default=0) + 1}"


def add_action_item(
    review: Review, draft: ActionItemDraft, *, by: str | None, now: datetime
) -> tuple[Review, ActionItemAdded]:
    _require_status(review, ACTION_ITEMS_EDITABLE, "action items")
    if len(review.action_items) >= MAX_ENTRIES:
        raise InvalidEditError("action_items", f"a review holds at most {MAX_ENTRIES} action items")
    item = ActionItem(id=next_action_item_id(review), created_at=now, updated_at=now, **draft.model_dump())
    version = review.version + 1
    edited = review.model_copy(
        update={"action_items": [*review.action_items, item], "version": version, "updated_at": now, "updated_by": by}
    )
    check_within_limits(review, edited)
    event = ActionItemAdded(
        event_id=event_id_for(review.id, "action_item_added", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        **item.event_fields(),
    )
    return edited, event


def update_action_item(
    review: Review, item_id: str, edit: ActionItemEdit, *, by: str | None, now: datetime
) -> tuple[Review, ActionItemUpdated] | None:
    item = review.action_item(item_id)
    if item is None:
        raise UnknownActionItemError(f"review {review.id} has no action item {item_id}")
    _require_status(review, ACTION_ITEMS_EDITABLE, "action items")
    update: dict[str, Any] = {name: getattr(edit, name) for name in edit.model_fields_set}
    for required in ("title", "priority", "category", "status", "description"):
        if update.get(required, "") is None:
            raise InvalidEditError(required, "cannot be cleared")
    status = update.get("status", item.status)
    if status != ActionItemStatus.WONT_DO:
        if update.get("status_reason") is not None:
            raise InvalidEditError("status_reason", "is only kept for an action item whose status is wont_do")
        update["status_reason"] = None  # the reason belongs to wont_do only
    elif not update.get("status_reason", item.status_reason):
        raise InvalidEditError("status_reason", "a reason is required when status is wont_do")
    changed = tuple(sorted(name for name, value in update.items() if getattr(item, name) != value))
    if not changed:
        return None
    updated_item = item.model_copy(update={**{name: update[name] for name in changed}, "updated_at": now})
    version = review.version + 1
    edited = review.model_copy(
        update={
            "action_items": [updated_item if other.id == item_id else other for other in review.action_items],
            "version": version,
            "updated_at": now,
            "updated_by": by,
        }
    )
    check_within_limits(review, edited)
    event = ActionItemUpdated(
        event_id=event_id_for(review.id, "action_item_updated", version),
        occurred_at=now,
        review_id=review.id,
        version=version,
        **updated_item.event_fields(),
        changed=changed,
        status_reason=updated_item.status_reason,
    )
    return edited, event
