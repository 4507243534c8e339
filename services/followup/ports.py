"""What follow-up's tracker, scheduler and metrics need from storage, as ``typing.Protocol`` ports.

The MongoDB repositories implement them; unit tests pass fakes that implement the same Protocols. The values a port
speaks in live here too, so the adapters depend on the ports and not the other way round.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas import AnyReviewEvent
from services.followup.domain.backlog import Backlog
from services.followup.domain.projection import ReviewView
from services.followup.domain.timers import PlannedTimer

# The timers of one review as stored, fired ones included: timer id -> document.
StoredTimers = dict[str, dict[str, Any]]
# A view this replica stored: what it replaced (None: nothing) and what it is now.
ViewChange = tuple[ReviewView | None, ReviewView]
# An event as tracked: the view it met (None: none) and the view it left (None: still none).
TrackedEvent = tuple[AnyReviewEvent, ReviewView | None, ReviewView | None]
# A review's planned timers and its timers as read beforehand, to reconcile them with the others of a batch.
TimerPlan = tuple[tuple[PlannedTimer, ...], StoredTimers]


@dataclass(frozen=True)
class ClaimedTimer:
    """A due timer this replica holds the lease on, with the event its firing publishes."""

    timer_id: str
    review_id: str
    kind: str
    subject: str
    level: int
    due_at: datetime
    event_id: str
    event_type: str
    payload: str
    attempts: int
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class ReviewViews(Protocol):
    """Follow-up's view of each review."""

    async def get(self, review_id: str) -> ReviewView | None: ...

    async def get_many(self, review_ids: Iterable[str]) -> dict[str, ReviewView | None]: ...

    async def save(self, view: ReviewView, replacing: ReviewView | None) -> bool:
        """Compare-and-set: False, and nothing written, when the stored view is no longer ``replacing``."""
        ...

    async def save_many(self, changes: Sequence[ViewChange]) -> set[str]:
        """Each ``(replacing, view)`` a compare-and-set as ``save``, all in one write; the review ids not stored."""
        ...


class BacklogCounter(Protocol):
    """The counting side of the views: the backlog as stored, and the changes stored since it was counted."""

    async def backlog(self, now: datetime) -> Backlog: ...

    def take_changes(self) -> list[ViewChange] | None:
        """The changes stored since the last count or take; None when more than were kept: count again."""
        ...


class PlannedTimers(Protocol):
    """Each review's timers, made to match what the domain plans."""

    async def timers_of(self, review_ids: Iterable[str]) -> dict[str, StoredTimers]: ...

    async def reconcile(
        self, review_id: str, planned: tuple[PlannedTimer, ...], stored: StoredTimers | None = None
    ) -> StoredTimers | None:
        """The review's timers as they now are; None when a write met a timer written meanwhile: read them again."""
        ...

    async def reconcile_many(self, plans: Mapping[str, TimerPlan]) -> dict[str, StoredTimers | None]:
        """``reconcile`` for several reviews in one write: review id -> its timers as they now are, or None."""
        ...


class DueTimers(Protocol):
    """Due timers, fired once across replicas through a lease."""

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime) -> ClaimedTimer | None: ...

    async def mark_fired(self, timer_id: str, owner: str, now: datetime, *, skipped: bool = False) -> bool:
        """False when this replica's lease was lost (another replica took the timer over)."""
        ...

    async def release(self, timer_id: str, owner: str) -> None: ...
