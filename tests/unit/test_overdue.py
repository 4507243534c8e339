"""The word "overdue" means one thing in both services (docs/overdue.md): due at or before now and not yet published.

Review's ``overdue`` filter and follow-up's gauge (and its escalations, planned by the same statuses) judge each
status and due date alike; ``tests/integration/test_overdue.py`` checks the same on the stored data.
"""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from schemas import ReviewStatus
from services.followup.domain.backlog import review_overdue
from services.followup.domain.projection import ReviewView, apply_event
from services.review.domain.workflow import is_overdue
from tests.unit.followup.builders import ReviewStory
from tests.unit.review.builders import NOW, opened

# Due a day ago, at this very moment, a day ahead, or never.
DUE = {"past": -timedelta(days=1), "now": timedelta(0), "ahead": timedelta(days=1), "none": None}
EXPECTED_OVERDUE = {
    (status, due)
    for status in (ReviewStatus.OPEN, ReviewStatus.IN_REVIEW, ReviewStatus.APPROVED)
    for due in ("past", "now")
}


def due_at(due: str) -> datetime | None:
    offset = DUE[due]
    return None if offset is None else NOW + offset


def view(status: ReviewStatus, due: str) -> ReviewView:
    tracked = apply_event(None, ReviewStory().opened(due_at=due_at(due))).view
    assert tracked is not None
    return replace(tracked, status=status)


@pytest.mark.parametrize("due", DUE)
@pytest.mark.parametrize("status", ReviewStatus)
def test_review_and_followup_judge_every_status_and_due_date_alike(status: ReviewStatus, due: str) -> None:
    review = opened().model_copy(update={"status": status, "due_at": due_at(due)})
    expected = (status, due) in EXPECTED_OVERDUE
    assert is_overdue(review, NOW) is expected
    assert review_overdue(view(status, due), NOW) is expected
