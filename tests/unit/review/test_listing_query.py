"""The listing's query keeps to conditions an index can answer where it can.

A top-level operator (``$and``, ``$or``, ``$nor``) around the overdue condition made the local MongoDB-compatible
server read every review for an overdue list (about 1 s at 10,000 reviews); as plain conditions on ``status`` and
``due_at`` the ``status_due`` index answers it. That the query picks the same reviews as the rule is checked on the
stored data in ``tests/integration/test_overdue.py``.
"""

from schemas import ReviewStatus
from services.review.documents import filter_query
from services.review.ports import ReviewFilter
from tests.unit.review.builders import NOW


def test_overdue_is_plain_conditions_on_status_and_due_date() -> None:
    query = filter_query(ReviewFilter(overdue=True, team="team-3"), NOW)

    assert not [field for field in query if field.startswith("$")]
    assert query["due_at"] == {"$lte": NOW}
    assert query["status"] == {"$in": ["approved", "in_review", "open"]}


def test_overdue_with_status_choices_keeps_only_those_that_can_be_overdue() -> None:
    chosen = ReviewFilter(overdue=True, statuses=[ReviewStatus.OPEN, ReviewStatus.PUBLISHED])
    none_can_be = ReviewFilter(overdue=True, statuses=[ReviewStatus.PUBLISHED])

    assert filter_query(chosen, NOW)["status"] == {"$in": ["open"]}
    assert filter_query(none_can_be, NOW)["status"] == {"$in": []}
