"""What is overdue on the stored data: review's ``overdue`` filter (a MongoDB query) and follow-up's overdue gauge (a
MongoDB aggregation) pick the same reviews as the rule both services share (docs/overdue.md)."""

from dataclasses import replace

import pytest

from schemas import ReviewStatus
from services.followup.domain.projection import apply_event
from services.followup.review_views import ReviewViewRepository
from services.review.documents import review_to_document
from services.review.ports import ReviewFilter
from services.review.repository import ReviewRepository
from tests.conftest import Servers
from tests.support.mongo import scratch_database
from tests.unit.followup.builders import ReviewStory
from tests.unit.review.builders import NOW, incident, opened
from tests.unit.test_overdue import DUE, EXPECTED_OVERDUE, due_at

pytestmark = pytest.mark.integration

CASES = [(status, due) for status in ReviewStatus for due in DUE]


async def test_reviews_overdue_filter_picks_what_the_rule_says(servers: Servers, unique: str) -> None:
    async with scratch_database(servers.mongodb_uri, f"overdue_review_{unique}") as db:
        names = {}
        for status, due in CASES:
            review = opened(incident(f"{status}-{due}")).model_copy(update={"status": status, "due_at": due_at(due)})
            names[review.id] = (status, due)
            await db.reviews.insert_one(review_to_document(review))
        repository = ReviewRepository(db)

        async def listed(overdue: bool, statuses: tuple[ReviewStatus, ...] = ()) -> set[tuple[ReviewStatus, str]]:
            where = ReviewFilter(overdue=overdue, statuses=statuses)
            found, total = await repository.find(where, NOW, limit=100, offset=0)
            assert total == len(found)
            return {names[review.id] for review in found}

        assert await listed(overdue=True) == EXPECTED_OVERDUE
        assert await listed(overdue=False) == set(CASES) - EXPECTED_OVERDUE
        # Combined with a status choice: only the chosen statuses, and none when no chosen status can be overdue.
        for statuses in [(ReviewStatus.OPEN, ReviewStatus.PUBLISHED), (ReviewStatus.PUBLISHED,), tuple(ReviewStatus)]:
            chosen = {case for case in CASES if case[0] in statuses}
            assert await listed(overdue=True, statuses=statuses) == EXPECTED_OVERDUE & chosen
            assert await listed(overdue=False, statuses=statuses) == chosen - EXPECTED_OVERDUE


async def test_followups_overdue_gauge_counts_what_the_rule_says(servers: Servers, unique: str) -> None:
    async with scratch_database(servers.mongodb_uri, f"overdue_followup_{unique}") as db:
        views = ReviewViewRepository(db)
        for status, due in CASES:
            tracked = apply_event(None, ReviewStory(f"r-{status}-{due}").opened(due_at=due_at(due))).view
            assert tracked is not None
            assert await views.save(replace(tracked, status=status), None)
        backlog = await views.backlog(NOW)
        assert sum(backlog.reviews_overdue.values()) == len(EXPECTED_OVERDUE)
