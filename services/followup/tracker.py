"""Tracking a review event: apply it to follow-up's view of the review, store that, reconcile the review's timers.

The timers are reconciled even when the event changed nothing (a duplicate or stale one): a crash after the view
was stored but before its timers were, is repaired by the redelivery of the same event.
"""

from schemas import AnyReviewEvent
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import Applied, Outcome, apply_event
from services.followup.domain.timers import plan_timers
from services.followup.repository import ReviewViewRepository, TimerRepository

# Two writers of one review only meet during a consumer-group rebalance; a few retries settle it.
MAX_CONFLICTS = 5


class ConcurrentUpdateError(RuntimeError):
    pass


class ReviewTracker:
    def __init__(self, views: ReviewViewRepository, timers: TimerRepository, policy: FollowupPolicy) -> None:
        self._views = views
        self._timers = timers
        self._policy = policy

    async def track(self, event: AnyReviewEvent) -> Applied:
        for _ in range(MAX_CONFLICTS):
            stored = await self._views.get(event.review_id)
            applied = apply_event(stored, event)
            if applied.outcome is Outcome.TRACKED and applied.view is not None:
                previous = None if stored is None else stored.version
                if not await self._views.save(applied.view, previous):
                    continue  # changed meanwhile: apply the event again to what is stored now
            if applied.view is not None:
                await self._timers.reconcile(applied.view.review_id, plan_timers(applied.view, self._policy))
            return applied
        raise ConcurrentUpdateError(f"review {event.review_id} kept changing while {event.event_id} was applied")
