"""Edits: partial, versioned, announced once; a no-op edit changes nothing; frozen statuses refuse edits."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import ActionItemCategory, ActionItemPriority, ActionItemStatus, ReviewStatus
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    SectionEdit,
    TimelineEntryDraft,
    add_action_item,
    add_timeline_entry,
    edit_sections,
    update_action_item,
)
from services.review.domain.record import event_id_for
from services.review.domain.refusals import InvalidEditError, NotEditableError, UnknownActionItemError
from tests.unit.review.builders import NOW, edited, opened, with_item, with_status


def test_a_section_edit_changes_only_what_it_names_and_announces_what_changed() -> None:
    review = edited(opened(), analysis={"what_went_well": ["Paging worked"]}, recommendations=["Add alerts"])
    change = edit_sections(
        review,
        SectionEdit.model_validate(
            {"owner": "dana", "analysis": {"what_went_wrong": ["Runbook outdated"]}, "recommendations": ["Add alerts"]}
        ),
        by="dana",
        now=NOW,
    )
    assert change is not None
    after, event = change
    assert after.version == review.version + 1
    assert after.owner == "dana"
    assert after.analysis.what_went_well == ["Paging worked"]  # merged, not replaced
    assert after.analysis.what_went_wrong == ["Runbook outdated"]
    assert after.updated_by == "dana"
    assert event.changed == ("analysis", "owner")  # recommendations were given but did not change
    assert event.owner == "dana"
    assert event.version == after.version
    assert event.event_id == event_id_for(review.id, "updated", after.version)


def test_an_edit_that_changes_nothing_is_no_change_at_all() -> None:
    review = edited(opened(), owner="dana")
    assert edit_sections(review, SectionEdit(owner="dana"), by="x", now=NOW) is None
    assert edit_sections(review, SectionEdit(), by="x", now=NOW) is None


def test_null_clears_a_value_and_empties_a_list_or_a_section() -> None:
    review = edited(
        opened(),
        owner="dana",
        recommendations=["r"],
        analysis={"what_went_well": ["a"], "what_went_wrong": ["b"], "resource_allocation": "enough"},
        gaps={"process": ["p"]},
    )
    after = edited(
        review, owner=None, recommendations=None, analysis={"what_went_well": None, "resource_allocation": None}
    )
    assert after.owner is None
    assert after.recommendations == []
    assert after.analysis.what_went_well == []
    assert after.analysis.what_went_wrong == ["b"]
    assert after.analysis.resource_allocation is None
    assert edited(after, gaps=None).gaps.process == []


def test_sections_are_frozen_once_approved() -> None:
    for status in (ReviewStatus.APPROVED, ReviewStatus.PUBLISHED, ReviewStatus.CLOSED, ReviewStatus.NOT_REQUIRED):
        with pytest.raises(NotEditableError, match=f"sections cannot be changed while the review is {status}"):
            edit_sections(with_status(opened(), status), SectionEdit(owner="x"), by="x", now=NOW)


def test_unknown_fields_and_bad_values_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="owners"):
        SectionEdit.model_validate({"owners": "x"})
    with pytest.raises(ValidationError, match=r"contributing_factors\.0\.category"):
        SectionEdit.model_validate({"contributing_factors": [{"category": "luck", "description": "x"}]})
    with pytest.raises(ValidationError, match=r"participants\.0\.function"):
        SectionEdit.model_validate({"participants": [{"name": "a", "function": "sales"}]})
    with pytest.raises(ValidationError, match=r"recommendations\.0"):
        SectionEdit.model_validate({"recommendations": ["  "]})
    with pytest.raises(ValidationError, match="due_at"):
        SectionEdit.model_validate({"due_at": "2026-12-01T10:00:00"})  # no time zone


def test_a_review_is_not_related_to_itself() -> None:
    review = opened()
    with pytest.raises(InvalidEditError, match="related_reviews: a review cannot be related to itself"):
        edit_sections(review, SectionEdit(related_reviews=[review.id]), by="x", now=NOW)


def test_timeline_entries_are_added_in_time_order_and_marked_added() -> None:
    review = opened()
    draft = TimelineEntryDraft(at=datetime(2026, 11, 27, 9, 30, tzinfo=UTC), kind="mitigated", message="Rolled back")
    after, event = add_timeline_entry(review, draft, by="erin", now=NOW)
    assert [(entry.kind, entry.origin) for entry in after.timeline] == [
        ("mitigated", "added"),
        ("resolved", "imported"),
    ]
    assert event.changed == ("timeline",)


def test_action_items_get_sequential_ids_and_an_event() -> None:
    review = with_item(opened())
    draft = ActionItemDraft(
        title="Alert on queue age",
        owner="erin",
        priority=ActionItemPriority.HIGH,
        category=ActionItemCategory.MONITORING_ALERTING,
        ticket_url="https://tracker.example/OPS-12",
    )
    after, event = add_action_item(review, draft, by="erin", now=NOW)
    assert [item.id for item in after.action_items] == ["AI-1", "AI-2"]
    assert (event.action_item_id, event.priority, event.category, event.status) == (
        "AI-2",
        ActionItemPriority.HIGH,
        ActionItemCategory.MONITORING_ALERTING,
        ActionItemStatus.OPEN,
    )
    assert event.version == after.version == review.version + 1


def test_action_items_can_be_worked_on_after_approval_but_not_once_closed() -> None:
    published = with_item(with_status(opened(), ReviewStatus.PUBLISHED))
    assert published.action_items[0].status is ActionItemStatus.OPEN
    with pytest.raises(NotEditableError, match="action items cannot be changed while the review is closed"):
        add_action_item(with_status(published, ReviewStatus.CLOSED), ActionItemDraft(title="x"), by="x", now=NOW)


def test_wont_do_needs_a_reason_which_goes_when_the_status_changes_again() -> None:
    with pytest.raises(ValidationError, match="status_reason"):
        ActionItemEdit(status=ActionItemStatus.WONT_DO)
    with pytest.raises(ValidationError, match="status_reason"):
        ActionItemDraft(title="x", status=ActionItemStatus.WONT_DO)
    review = with_item(opened())
    change = update_action_item(
        review,
        "AI-1",
        ActionItemEdit(status=ActionItemStatus.WONT_DO, status_reason="Covered by OPS-7"),
        by="a",
        now=NOW,
    )
    assert change is not None
    review, event = change
    assert (event.changed, event.status_reason) == (("status", "status_reason"), "Covered by OPS-7")
    with pytest.raises(InvalidEditError, match="status_reason: a reason is required"):
        update_action_item(review, "AI-1", ActionItemEdit.model_validate({"status_reason": None}), by="a", now=NOW)
    change = update_action_item(review, "AI-1", ActionItemEdit(status=ActionItemStatus.IN_PROGRESS), by="a", now=NOW)
    assert change is not None
    assert change[0].action_items[0].status_reason is None
    with pytest.raises(InvalidEditError, match="status_reason: is only kept"):
        update_action_item(change[0], "AI-1", ActionItemEdit(status_reason="why"), by="a", now=NOW)


def test_updating_an_action_item_refuses_unknown_ids_and_ignores_no_ops() -> None:
    review = with_item(opened(), owner="erin")
    with pytest.raises(UnknownActionItemError, match="no action item AI-9"):
        update_action_item(review, "AI-9", ActionItemEdit(owner="x"), by="a", now=NOW)
    assert update_action_item(review, "AI-1", ActionItemEdit(owner="erin"), by="a", now=NOW) is None
    with pytest.raises(InvalidEditError, match="title: cannot be cleared"):
        update_action_item(review, "AI-1", ActionItemEdit.model_validate({"title": None}), by="a", now=NOW)
