"""Which windows of list positions the reviews list reads (pure), the candidate queries of a filter and deciding the
rest of the filter on a review's fields."""

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest

from schemas import ReviewStatus, Severity
from services.review.documents import candidate_queries, counted_groups
from services.review.domain.list_filter import is_whole_filter, matches
from services.review.domain.list_window import Window, positions_below, positions_for_batch, windows
from services.review.list_positions import ListPositioner
from services.review.ports import ReviewFilter
from tests.support.waiting import eventually

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_windows_start_at_four_times_the_wanted_and_grow_fourfold_then_cover_all() -> None:
    assert list(windows(top=10_000, bottom=1, wanted=25)) == [
        Window(lowest=9_900, covers_all=False),
        Window(lowest=9_600, covers_all=False),
        Window(lowest=8_400, covers_all=False),
        Window(lowest=0, covers_all=True),
    ]


def test_no_window_is_larger_than_a_quarter_of_the_list() -> None:
    assert list(windows(top=8, bottom=1, wanted=2)) == [Window(0, covers_all=True)]
    assert list(windows(top=32, bottom=1, wanted=2)) == [Window(24, covers_all=False), Window(0, covers_all=True)]
    assert list(windows(top=31, bottom=1, wanted=2)) == [Window(0, covers_all=True)]


@pytest.mark.parametrize("wanted", [1, 2, 25, 50, 100, 250])
def test_a_filter_matching_nothing_reads_at_most_about_one_and_a_half_times_the_list(wanted: int) -> None:
    """Every window read in turn (the filter never fills the page): all of them hold at most 4/3 of the list."""
    for span in range(1, 12_000, 7):
        read = sum(
            min(top_minus(window, 1_000), span) for window in windows(top=1_000, bottom=1_001 - span, wanted=wanted)
        )
        assert read <= span * 4 / 3 + 1, (span, wanted, read)


def top_minus(window: Window, top: int) -> int:
    return top - window.lowest


def test_backfilled_positions_below_zero_are_covered() -> None:
    assert list(windows(top=5, bottom=-94, wanted=5)) == [Window(lowest=-15, covers_all=False), Window(-95, True)]
    assert list(windows(top=0, bottom=1, wanted=25)) == [Window(lowest=0, covers_all=True)]


def test_windows_want_at_least_one_review() -> None:
    with pytest.raises(ValueError, match="at least one"):
        list(windows(top=5, bottom=1, wanted=0))


def test_a_batch_takes_the_positions_up_to_the_new_top_in_order() -> None:
    assert positions_for_batch(top_after=12, count=3) == [10, 11, 12]
    assert positions_for_batch(top_after=1, count=1) == [1]


def test_backfilled_reviews_take_positions_below_the_lowest_newest_first() -> None:
    assert positions_below(bottom_after=-2, count=3) == [0, -1, -2]
    assert positions_below(bottom_after=-7, count=2) == [-6, -7]


async def test_the_positioner_passes_again_and_again_and_outlives_a_failed_pass() -> None:
    passes: list[int] = []

    async def position_unlisted() -> int:
        passes.append(len(passes))
        if len(passes) == 2:
            raise RuntimeError("the database went away")
        return 1

    task = asyncio.create_task(ListPositioner(position_unlisted, poll_seconds=0.01).run())
    try:

        async def count() -> int:
            return len(passes)

        await eventually(count, lambda done: done >= 4, timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_candidates_are_read_by_one_equality_the_most_selective_first() -> None:
    where = ReviewFilter(assigned_to="ana", overdue=False, team="t", service="s", statuses=(ReviewStatus.OPEN,))
    assert candidate_queries(where, NOW) == [{"owner": "ana"}, {"participants.name": "ana"}]
    assert candidate_queries(ReviewFilter(team="t", service="s", overdue=False), NOW) == [{"incident.service": "s"}]
    assert candidate_queries(ReviewFilter(team="t", title_contains="x"), NOW) == [{"incident.team": "t"}]
    by_status = ReviewFilter(statuses=(ReviewStatus.CLOSED, ReviewStatus.OPEN), severities=(Severity.LOW,))
    assert candidate_queries(by_status, NOW) == [{"status": "closed"}, {"status": "open"}]
    assert candidate_queries(ReviewFilter(title_contains="x", overdue=False), NOW) == [{}]


def test_overdue_candidates_are_the_overdue_reviews_of_each_status_that_can_be() -> None:
    queries = candidate_queries(ReviewFilter(overdue=True, assigned_to="ana", team="t"), NOW)
    assert queries == [{"status": status, "due_at": {"$lte": NOW}} for status in ("approved", "in_review", "open")]
    asked = ReviewFilter(overdue=True, statuses=(ReviewStatus.OPEN, ReviewStatus.CLOSED))
    assert candidate_queries(asked, NOW) == [{"status": "open", "due_at": {"$lte": NOW}}]


def test_statuses_that_cannot_be_overdue_match_nothing() -> None:
    assert candidate_queries(ReviewFilter(overdue=True, statuses=(ReviewStatus.PUBLISHED,)), NOW) == []


def test_only_a_filter_of_statuses_alone_is_answered_by_its_candidates() -> None:
    assert is_whole_filter(ReviewFilter())
    assert is_whole_filter(ReviewFilter(statuses=(ReviewStatus.OPEN,)))
    assert not is_whole_filter(ReviewFilter(statuses=(ReviewStatus.OPEN,), severities=(Severity.LOW,)))
    assert not is_whole_filter(ReviewFilter(team="t"))
    assert not is_whole_filter(ReviewFilter(title_contains="x"))


def test_a_review_matches_when_every_condition_holds() -> None:
    fields = {
        "status": "open",
        "due_at": NOW,
        "owner": "bo",
        "participants": [{"name": "ana"}],
        "incident": {"severity": "high", "service": "s", "team": "t", "title": "Disk (p99) FULL"},
    }
    assert matches(ReviewFilter(assigned_to="ana", overdue=True, team="t", title_contains="disk (P99"), fields, NOW)
    assert not matches(ReviewFilter(assigned_to="cy"), fields, NOW)
    assert not matches(ReviewFilter(overdue=False), fields, NOW)
    assert not matches(ReviewFilter(title_contains="disk.(p99"), fields, NOW)  # no pattern: a dot is a dot
    assert not matches(ReviewFilter(team="t"), {**fields, "incident": {}}, NOW)


def test_counts_tell_the_total_only_for_status_and_severity_filters() -> None:
    assert counted_groups(ReviewFilter(team="t")) is None
    assert counted_groups(ReviewFilter(overdue=False)) is None
    assert counted_groups(ReviewFilter(assigned_to="a")) is None
    assert len(counted_groups(ReviewFilter()) or []) == len(ReviewStatus) * len(Severity)
    assert counted_groups(
        ReviewFilter(statuses=(ReviewStatus.OPEN, ReviewStatus.OPEN), severities=(Severity.LOW,))
    ) == [("open", "low")]
