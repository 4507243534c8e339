"""A review cannot grow past its limits: counts per list and a total size, refused before anything is written."""

import pytest

from schemas import ReviewStatus
from services.review.domain.editing import SectionEdit, edit_sections
from services.review.domain.limits import MAX_RECORD_BYTES, MAX_STATUS_CHANGES, RecordLimitError, record_bytes
from services.review.domain.record import LONG_TEXT, MAX_ENTRIES, StatusChange
from services.review.domain.workflow import Transition, transition
from tests.unit.review.builders import NOW, edited, opened

FULL_LIST = ["x" * LONG_TEXT] * MAX_ENTRIES  # 2 MB: valid, every field within its own limit


def test_edits_that_each_are_valid_cannot_grow_the_review_past_its_total_size() -> None:
    review = edited(
        opened(), recommendations=FULL_LIST, analysis={"what_went_well": FULL_LIST, "what_went_wrong": FULL_LIST}
    )
    assert record_bytes(review) < MAX_RECORD_BYTES

    with pytest.raises(RecordLimitError) as refused:
        edit_sections(
            review,
            SectionEdit.model_validate({"gaps": {"process": FULL_LIST, "technology": FULL_LIST}}),
            by="alice",
            now=NOW,
        )
    assert (refused.value.limit, refused.value.maximum) == ("record_bytes", MAX_RECORD_BYTES)
    assert refused.value.code == "record_limit_exceeded"
    assert f"at most {MAX_RECORD_BYTES} bytes" in refused.value.message


def test_a_review_already_past_the_size_may_still_shrink_but_not_grow() -> None:
    oversized = opened().model_copy(update={"recommendations": ["x" * LONG_TEXT] * (MAX_RECORD_BYTES // LONG_TEXT + 1)})
    assert record_bytes(oversized) > MAX_RECORD_BYTES

    shrunk = edit_sections(oversized, SectionEdit(recommendations=["one"]), by="alice", now=NOW)
    assert shrunk is not None
    assert shrunk[0].recommendations == ["one"]
    with pytest.raises(RecordLimitError):
        edit_sections(oversized, SectionEdit(owner="alice"), by="alice", now=NOW)


def test_the_status_history_is_bounded_too() -> None:
    review = opened()
    back_and_forth = [
        StatusChange(from_status=ReviewStatus.OPEN, to_status=ReviewStatus.IN_REVIEW, at=NOW)
    ] * MAX_STATUS_CHANGES
    review = review.model_copy(update={"status_history": back_and_forth})
    with pytest.raises(RecordLimitError) as refused:
        transition(review, Transition(to=ReviewStatus.IN_REVIEW), by="alice", now=NOW)
    assert (refused.value.limit, refused.value.maximum) == ("status_history", MAX_STATUS_CHANGES)
