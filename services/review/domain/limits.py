"""How large a review may grow, checked on the changed record before anything is written.

Each field has its own limit, but they do not bound the whole: 1,000 timeline entries of 10 KB are 10 MB, and
MongoDB refuses a document over 16 MiB. So every list has a count and the record a total size, measured as its
JSON (BSON is no larger for records this shape: bounded lists, dates of 8 bytes instead of 20-odd characters).
The total leaves room under 16 MiB for the write itself and for fields added later.
"""

from collections.abc import Callable
from dataclasses import dataclass

from services.review.domain.record import MAX_ENTRIES, Review
from services.review.domain.refusals import ReviewRefusedError

MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_TIMELINE_ENTRIES = MAX_ENTRIES * 5
MAX_RELATED_REVIEWS = 50
MAX_STATUS_CHANGES = 1_000


class RecordLimitError(ReviewRefusedError):
    """The change would make the review larger than a review may be; ``limit`` names which limit."""

    code = "record_limit_exceeded"

    def __init__(self, limit: str, maximum: int, message: str) -> None:
        super().__init__(message)
        self.limit, self.maximum = limit, maximum


@dataclass(frozen=True)
class ListLimit:
    name: str  # the limit's name in a refusal, and the field people know
    maximum: int
    count: Callable[[Review], int]


LIST_LIMITS = (
    ListLimit("timeline", MAX_TIMELINE_ENTRIES, lambda review: len(review.timeline)),
    ListLimit("action_items", MAX_ENTRIES, lambda review: len(review.action_items)),
    ListLimit("participants", MAX_ENTRIES, lambda review: len(review.participants)),
    ListLimit("contributing_factors", MAX_ENTRIES, lambda review: len(review.contributing_factors)),
    ListLimit("recommendations", MAX_ENTRIES, lambda review: len(review.recommendations)),
    ListLimit("related_reviews", MAX_RELATED_REVIEWS, lambda review: len(review.related_reviews)),
    ListLimit("analysis.what_went_well", MAX_ENTRIES, lambda review: len(review.analysis.what_went_well)),
    ListLimit("analysis.what_went_wrong", MAX_ENTRIES, lambda review: len(review.analysis.what_went_wrong)),
    ListLimit("gaps.process", MAX_ENTRIES, lambda review: len(review.gaps.process)),
    ListLimit("gaps.technology", MAX_ENTRIES, lambda review: len(review.gaps.technology)),
    ListLimit("gaps.training", MAX_ENTRIES, lambda review: len(review.gaps.training)),
    ListLimit("status_history", MAX_STATUS_CHANGES, lambda review: len(review.status_history)),
)


def record_bytes(review: Review) -> int:
    return len(review.model_dump_json().encode())


def check_within_limits(before: Review, after: Review) -> None:
    """Refuse ``after`` (the review as a change would leave it) when it passes a limit ``before`` was within.

    A review already past a limit (stored before the limit existed, or imported) may still shrink: only growth past
    a limit is refused.
    """
    for limit in LIST_LIMITS:
        count = limit.count(after)
        if count > limit.maximum and count > limit.count(before):
            raise RecordLimitError(
                limit.name, limit.maximum, f"{limit.name}: a review holds at most {limit.maximum} of these"
            )
    size = record_bytes(after)
    if size > MAX_RECORD_BYTES and size > record_bytes(before):
        raise RecordLimitError(
            "record_bytes",
            MAX_RECORD_BYTES,
            f"the review would be {size} bytes; a review may be at most {MAX_RECORD_BYTES} bytes "
            "(shorten or remove some text first)",
        )
