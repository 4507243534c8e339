"""Timeline entries people added can be changed and removed; imported ones are the tool's record: read-only."""

from datetime import UTC, datetime, timedelta

import pytest

from schemas import ReviewStatus
from services.review.domain.editing import (
    TimelineEntryDraft,
    TimelineEntryEdit,
    add_timeline_entry,
    edit_timeline_entry,
    remove_timeline_entry,
)
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import Review
from services.review.domain.refusals import (
    ImportedTimelineEntryError,
    InvalidEditError,
    NotEditableError,
    UnknownTimelineEntryError,
)
from services.review.metrics import ReviewMetrics
from services.review.ports import StaleVersionError
from services.review.service import ReviewService
from tests.unit.review.builders import NOW, opened, with_status
from tests.unit.review.test_batches import InMemoryReviews

MITIGATED = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def with_added_entry(review: Review) -> Review:
    draft = TimelineEntryDraft(at=MITIGATED, kind="mitigated", message="Rolled back", actor="erin")
    return add_timeline_entry(review, draft, by="erin", now=NOW)[0]


def test_entries_get_ids_imported_ones_when_opened_added_ones_next_in_line() -> None:
    review = with_added_entry(opened())
    assert [(entry.id, entry.kind, entry.origin) for entry in review.timeline] == [
        ("T-2", "mitigated", "added"),
        ("T-1", "resolved", "imported"),
    ]


def test_a_review_stored_before_entries_had_ids_loads_with_ids_the_same_on_every_read() -> None:
    document = with_added_entry(opened()).model_dump(mode="json")
    for entry in document["timeline"]:
        del entry["id"]
    first, second = Review.model_validate(document), Review.model_validate(document)
    assert [entry.id for entry in first.timeline] == ["T-1", "T-2"] == [entry.id for entry in second.timeline]


def test_an_added_entry_is_edited_kept_in_time_order_and_announced() -> None:
    review = with_added_entry(opened())
    later = MITIGATED + timedelta(hours=1)  # after the imported "resolved" entry now
    change = edit_timeline_entry(
        review, "T-2", TimelineEntryEdit(at=later, message="Rolled back v42", actor=None), by="dana", now=NOW
    )
    assert change is not None
    after, event = change
    assert [(entry.id, entry.message, entry.actor) for entry in after.timeline] == [
        ("T-1", "fixed", "pagerduty"),
        ("T-2", "Rolled back v42", None),
    ]
    assert after.timeline[1].kind == "mitigated"  # left out: left alone
    assert (after.version, after.updated_by) == (review.version + 1, "dana")
    assert (event.changed, event.version, event.review_id) == (("timeline",), after.version, review.id)


def test_an_edit_that_changes_nothing_changes_nothing() -> None:
    review = with_added_entry(opened())
    assert edit_timeline_entry(review, "T-2", TimelineEntryEdit(kind="mitigated"), by="dana", now=NOW) is None


def test_when_and_what_cannot_be_cleared() -> None:
    review = with_added_entry(opened())
    with pytest.raises(InvalidEditError, match="kind"):
        edit_timeline_entry(review, "T-2", TimelineEntryEdit.model_validate({"kind": None}), by="dana", now=NOW)


def test_an_added_entry_is_removed_and_announced() -> None:
    review = with_added_entry(opened())
    after, event = remove_timeline_entry(review, "T-2", by="dana", now=NOW)
    assert [entry.id for entry in after.timeline] == ["T-1"]
    assert (event.changed, after.version) == (("timeline",), review.version + 1)


def test_an_imported_entry_is_refused_naming_it() -> None:
    review = with_added_entry(opened())
    with pytest.raises(ImportedTimelineEntryError, match=r"T-1 was imported from pagerduty and is read-only"):
        edit_timeline_entry(review, "T-1", TimelineEntryEdit(message="not what happened"), by="dana", now=NOW)
    with pytest.raises(ImportedTimelineEntryError, match="T-1"):
        remove_timeline_entry(review, "T-1", by="dana", now=NOW)


def test_an_unknown_entry_and_a_frozen_review_are_refused() -> None:
    review = with_added_entry(opened())
    with pytest.raises(UnknownTimelineEntryError, match="T-9"):
        remove_timeline_entry(review, "T-9", by="dana", now=NOW)
    with pytest.raises(NotEditableError):
        remove_timeline_entry(with_status(review, ReviewStatus.APPROVED), "T-2", by="dana", now=NOW)


async def test_a_stale_version_is_refused_before_anything_is_stored() -> None:
    repository = InMemoryReviews()
    review = with_added_entry(opened())
    repository.reviews[review.incident_key] = review
    service = ReviewService(
        repository,
        ReviewPolicy(),
        ReviewMetrics.create(),
        events_topic="reviews.events",
        recurrence_window=timedelta(days=90),
        clock=lambda: NOW,
    )
    with pytest.raises(StaleVersionError):
        await service.remove_timeline_entry(review.id, "T-2", review.version - 1, "dana")
    with pytest.raises(StaleVersionError):
        await service.edit_timeline_entry(review.id, "T-2", review.version - 1, TimelineEntryEdit(kind="x"), "dana")
    assert (repository.reviews[review.incident_key], repository.events) == (review, [])
    edited = await service.edit_timeline_entry(review.id, "T-2", review.version, TimelineEntryEdit(kind="x"), "dana")
    assert edited.timeline_entry("T-2") is not None
    assert [type(event).__name__ for event in repository.events] == ["ReviewUpdated"]
