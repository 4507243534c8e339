"""Opening a batch of incidents' reviews together, with the same outcome as opening them one after the other.

Opened one by one, each incident finds its earlier occurrence among the stored reviews, including those the batch
opened before it. Opened together, nothing of the batch is stored yet: each incident's earlier occurrence is the later
(``occurrence_order``) of what storage answers for its group and the batch's own reviews in that group and window,
group by group in the order ``recurrence_query`` gives (fingerprint first, then service and title). Links are applied
to the latest state of each review, so a review linked twice in a batch (or opened and then linked) ends where the
one-by-one path leaves it: one version per link, one ``ReviewUpdated`` per version.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import ReviewEvent, ReviewOpened
from services.review.domain.record import Review
from services.review.domain.recurrence import (
    RecurrenceGroup,
    RecurrenceQuery,
    link_recurrence,
    occurrence_order,
    recurrence_groups,
    recurrence_query,
)


@dataclass(frozen=True)
class NewReview:
    """A review the batch opens: as it is to be stored, and what its opening wrote (in order) at ``at``."""

    review: Review
    events: tuple[ReviewEvent, ...]
    at: datetime
    earlier: Review | None  # the earlier occurrence it recurs, as it was when linked


@dataclass(frozen=True)
class LinkedEarlier:
    """A stored review that recurrences of the batch link to: as linked by all of them, and the version it was read
    at (it moves one version per link)."""

    review: Review
    read_version: int
    recurrence_ids: tuple[str, ...]


@dataclass(frozen=True)
class BatchOpening:
    opened: tuple[NewReview, ...]
    linked: tuple[LinkedEarlier, ...]


def _occurrence(review: Review) -> tuple[datetime, datetime, str]:
    return occurrence_order(review.incident.resolved_at, review.created_at, review.id)


@dataclass
class _Batch:
    current: dict[str, Review] = field(default_factory=dict)  # the latest state of every review the batch touched
    members: dict[str, list[str]] = field(default_factory=dict)  # group key -> ids of the batch's new reviews in it
    read_versions: dict[str, int] = field(default_factory=dict)  # stored earlier review -> version read
    recurrences: dict[str, list[str]] = field(default_factory=dict)  # stored earlier review -> ids linking to it

    def latest_in(self, group: RecurrenceGroup, query: RecurrenceQuery, stored: Review | None) -> Review | None:
        candidates = [
            self.current[review_id]
            for review_id in self.members.get(group.key, ())
            if review_id != query.review_id
            and query.since <= self.current[review_id].incident.resolved_at <= query.until
        ]
        if stored is not None:
            candidates.append(self.current.get(stored.id, stored))
        return max(candidates, key=_occurrence, default=None)


def open_batch(
    openings: Sequence[tuple[Review, ReviewOpened, datetime]],
    stored: Mapping[str, Sequence[Review | None]],
    window: timedelta,
) -> BatchOpening:
    """Link the batch's new reviews (in partition order, distinct incidents) to their earlier occurrences.

    ``stored``: for each new review's id, the latest stored occurrence of each of its recurrence query's groups (in
    the query's order), or None; an id without an entry has nothing stored to find.
    """
    batch = _Batch()
    order: list[tuple[str, tuple[ReviewEvent, ...], datetime, Review | None]] = []
    for new, opened, at in openings:
        review = new
        events: tuple[ReviewEvent, ...] = (opened,)
        earlier = None
        query = recurrence_query(review, window)
        if query is not None:
            found = stored.get(review.id) or (None,) * len(query.groups)
            for group, stored_latest in zip(query.groups, found, strict=True):
                earlier = batch.latest_in(group, query, stored_latest)
                if earlier is not None:
                    break
        if earlier is not None:
            link = link_recurrence(review, earlier, at)
            review = link.new
            events += (link.recurred, link.earlier_updated, *link.earlier_items_recurred)
            if earlier.id not in batch.current:
                batch.read_versions[earlier.id] = earlier.version
            if earlier.id in batch.read_versions:
                batch.recurrences.setdefault(earlier.id, []).append(review.id)
            batch.current[earlier.id] = link.earlier
        batch.current[review.id] = review
        for group in recurrence_groups(review):
            batch.members.setdefault(group.key, []).append(review.id)
        order.append((review.id, events, at, earlier))
    return BatchOpening(
        opened=tuple(
            NewReview(batch.current[review_id], events, at, earlier) for review_id, events, at, earlier in order
        ),
        linked=tuple(
            LinkedEarlier(batch.current[review_id], read_version, tuple(batch.recurrences[review_id]))
            for review_id, read_version in batch.read_versions.items()
        ),
    )
