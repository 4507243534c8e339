"""What the review service layer needs from storage, as ``typing.Protocol`` ports.

``ReviewRepository`` (MongoDB) implements them; unit tests pass fakes that implement the same Protocols. The values
and errors a port speaks in live here too, so the adapter depends on the port and not the other way round.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from schemas import ActionItemCategory, ActionItemPriority, AnyFollowupEvent, ReviewEvent
from services.review.domain.batch_opening import BatchOpening
from services.review.domain.followup_view import FollowupView
from services.review.domain.list_filter import ReviewFilter as ReviewFilter  # noqa: PLC0414 (re-exported: ports speak it)
from services.review.domain.record import ActionItem, Review
from services.review.domain.recurrence import RecurrenceQuery


class ReviewNotFoundError(LookupError):
    pass


class StaleVersionError(Exception):
    """The review changed since the writer read it."""

    def __init__(self, review_id: str, read_version: int, current_version: int) -> None:
        super().__init__(f"review {review_id} is at version {current_version}, not {read_version}")
        self.review_id = review_id
        self.read_version = read_version
        self.current_version = current_version


@dataclass(frozen=True)
class ReviewPage:
    """One page of a listing and how many reviews match: exactly, or (``total_is_exact`` false) at least ``total``."""

    reviews: list[Review]
    total: int
    total_is_exact: bool = True


@dataclass(frozen=True)
class ActionItemFilter:
    """Unfinished action items across reviews: of one owner, one team (the incident's), category or priority."""

    owner: str | None = None
    team: str | None = None
    categories: Sequence[ActionItemCategory] = ()
    priorities: Sequence[ActionItemPriority] = ()
    overdue_only: bool = False


@dataclass(frozen=True)
class ActionItemRow:
    """One unfinished action item and the review it belongs to."""

    review_id: str
    review_title: str
    team: str | None
    item: ActionItem


@dataclass(frozen=True)
class OutboxEvent:
    """One stored event as it is published: one Kafka record on ``topic``, keyed by its review."""

    event_id: str
    topic: str
    key: str
    event_type: str
    payload: str


@dataclass(frozen=True)
class OutboxEntry:
    """What one transaction wrote for one review: its events in publishing order, marked sent together."""

    entry_id: str
    topic: str
    key: str
    events: tuple[OutboxEvent, ...]
    # Where the entry stands in sending order (``domain/outbox_order.py``).
    order: str


class ReviewStore(Protocol):
    """Reviews and the events announcing their changes, written together (one transaction) or not at all."""

    async def incident_keys_with_review(self, incident_keys: Iterable[str]) -> set[str]: ...

    async def earlier_occurrence(self, query: RecurrenceQuery) -> Review | None: ...

    async def latest_occurrences(self, queries: Sequence[RecurrenceQuery]) -> list[tuple[Review | None, ...]]:
        """For each query, the latest stored review of each of its groups (in its order) within its window, not the
        query's own review: what ``earlier_occurrence`` asks group by group, for a whole batch at once."""
        ...

    async def open_review(
        self,
        review: Review,
        events: Sequence[ReviewEvent],
        topic: str,
        now: datetime,
        *,
        linked_earlier: tuple[Review, int] | None = None,
    ) -> bool:
        """False (and nothing written) when the incident already has a review."""
        ...

    async def open_reviews(self, batch: BatchOpening, topic: str) -> bool:
        """Store a batch's new reviews, their events and the links of the earlier reviews, all or nothing.

        False (and nothing written) when one of the incidents already has a review; ``StaleVersionError`` (nothing
        written) when a linked earlier review is no longer at the version read.
        """
        ...

    async def save(
        self, review: Review, read_version: int, events: Sequence[ReviewEvent], topic: str, now: datetime
    ) -> None:
        """``StaleVersionError`` when the stored review is no longer at ``read_version``; nothing written then."""
        ...

    async def get(self, review_id: str) -> Review | None: ...

    async def find(self, where: ReviewFilter, now: datetime, *, limit: int, offset: int) -> tuple[list[Review], int]:
        """One page, newest first, and exactly how many match."""
        ...

    async def find_page(
        self, where: ReviewFilter, now: datetime, *, limit: int, offset: int, exact_total: bool
    ) -> ReviewPage:
        """One page, newest first; how many match, exactly when ``exact_total`` (or when it costs nothing more),
        else possibly a lower bound read from a bounded stretch of the list."""
        ...

    async def unfinished_action_items(
        self, where: ActionItemFilter, now: datetime, *, limit: int, offset: int
    ) -> tuple[list[ActionItemRow], int]:
        """Unfinished action items across reviews, soonest due first, and how many match."""
        ...


class Outbox(Protocol):
    """The events stored with review changes, waiting to be published, and the lease that lets one relay send them."""

    async def hold_relay_lease(self, holder: str, now: datetime, seconds: float) -> bool: ...

    async def release_relay_lease(self, holder: str) -> None: ...

    async def unsent(self, limit: int, *, ends_before: str | None = None) -> list[OutboxEntry]:
        """The ``limit`` oldest unsent entries (each holding one or more events), oldest first (fewer only when no more
        are unsent).

        ``ends_before``: an order key the batch probably ends before; it bounds what is read, never the answer.
        """
        ...

    async def mark_sent(self, entry_ids: list[str], now: datetime) -> None: ...


class FollowupViewStore(Protocol):
    """What follow-up did and will do for each review, as learnt from ``followups.events``."""

    async def get(self, review_id: str) -> FollowupView | None: ...

    async def apply(self, event: AnyFollowupEvent, now: Callable[[], datetime]) -> bool:
        """Fold the event into its review's view; False when it was already applied."""
        ...
