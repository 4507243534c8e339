"""Tracking a review event: apply it to follow-up's view of the review, store that, reconcile the review's timers.

The timers are reconciled even when the event changed nothing (a duplicate or stale one): a crash after the view
was stored but before its timers were, is repaired by the redelivery of the same event.
"""

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from schemas import AnyReviewEvent
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import Applied, Outcome, ReviewView, apply_event
from services.followup.domain.timers import plan_timers
from services.followup.ports import PlannedTimers, ReviewViews, StoredTimers

# Two writers of one review only meet during a consumer-group rebalance; a few retries settle it.
MAX_CONFLICTS = 5


@dataclass
class KnownReviews:
    """What is stored about the reviews of a batch of events (their views and timers), read in two queries.

    Kept equal to what tracking stores. An entry is taken out while an event of its review is tracked, so a failure
    leaves it to be read again.
    """

    views: dict[str, ReviewView | None] = field(default_factory=dict)
    timers: dict[str, StoredTimers] = field(default_factory=dict)


class ConcurrentUpdateError(RuntimeError):
    pass


class AfterTracking(Protocol):
    """More to keep up to date once an event is applied and its view stored (e.g. verification timers)."""

    def track(self, event: AnyReviewEvent, before: ReviewView | None, after: ReviewView | None) -> Awaitable[None]: ...


class ReviewTracker:
    def __init__(
        self,
        views: ReviewViews,
        timers: PlannedTimers,
        policy: FollowupPolicy,
        after_tracking: AfterTracking | None = None,
    ) -> None:
        self._views = views
        self._timers = timers
        self._policy = policy
        self._after_tracking = after_tracking

    async def known(self, review_ids: Iterable[str]) -> KnownReviews:
        """The stored views and timers of these reviews, for tracking a batch of their events."""
        ids = sorted(set(review_ids))
        return KnownReviews(await self._views.get_many(ids), await self._timers.timers_of(ids))

    async def track(self, event: AnyReviewEvent, known: KnownReviews | None = None) -> Applied:
        """Apply ``event`` to the stored view of its review, store that, reconcile the review's timers.

        ``known``: what was read beforehand for a batch (``known()``), used instead of reading again. A view that
        changed meanwhile is caught by the compare-and-set, as with a fresh read; timers that did are handled by
        the reconcile's own filters.
        """
        known = KnownReviews() if known is None else known
        review_id = event.review_id
        for _ in range(MAX_CONFLICTS):
            stored = known.views.pop(review_id) if review_id in known.views else await self._views.get(review_id)
            applied = apply_event(stored, event)
            tracked = applied.outcome is Outcome.TRACKED
            if tracked and applied.view is not None and not await self._views.save(applied.view, stored):
                continue  # changed meanwhile: apply the event again to what is stored now
            if applied.view is not None:
                planned = plan_timers(applied.view, self._policy)
                timers = await self._timers.reconcile(review_id, planned, known.timers.pop(review_id, None))
                if timers is not None:
                    known.timers[review_id] = timers
            if self._after_tracking is not None:
                await self._after_tracking.track(event, stored, applied.view)
            known.views[review_id] = applied.view
            return applied
        raise ConcurrentUpdateError(f"review {event.review_id} kept changing while {event.event_id} was applied")
