"""Tracking review events: apply them to follow-up's view of each review, store that, reconcile the review's timers.

The timers are reconciled even when the events changed nothing (duplicates or stale ones): a crash after the views
were stored but before their timers were, is repaired by the redelivery of the same events.

A batch (``track_batch``) costs the same few round trips whatever its size: the views and timers were read for it
(``known``); each review's events are applied in order in memory; then one write stores every changed view, one
reconciles every review's timers, and the verification timers likewise. ``track`` is the path of one event, with its
retries; the batch hands it the reviews it could not store.
"""

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas import AnyReviewEvent
from services.followup.domain.policy import FollowupPolicy
from services.followup.domain.projection import Applied, Outcome, ReviewView, apply_event
from services.followup.domain.timers import plan_timers
from services.followup.ports import PlannedTimers, ReviewViews, StoredTimers, TimerPlan, TrackedEvent

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

    def track_many(self, tracked: Sequence[TrackedEvent]) -> Awaitable[None]:
        """``track`` for a batch's events (in their order), ending where calling it for each would."""
        ...


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

    async def track_batch(self, events: Sequence[AnyReviewEvent], known: KnownReviews) -> list[Applied | None]:
        """Track a batch's events (in partition order) in a few writes; the result of each, None for one not tracked.

        Ends where ``track`` called for each event in turn ends: each review's events are applied one after the other
        to its view in memory, and only its last view is stored; its timers are reconciled to what that view plans
        (even when no event changed it: that repairs a crash between the two writes). Events of a review whose view
        could not be stored (changed meanwhile by another writer during a rebalance, or refused) get None: the caller
        tracks them with ``track``, one by one, which reads the view again and retries, or isolates a bad event.
        """
        by_review: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_review.setdefault(event.review_id, []).append(index)
        unread = [review_id for review_id in by_review if review_id not in known.views]
        if unread:
            known.views.update(await self._views.get_many(unread))
        results: list[Applied | None] = [None] * len(events)
        stored: dict[str, ReviewView | None] = {}
        final: dict[str, ReviewView | None] = {}
        tracked: dict[str, list[TrackedEvent]] = {}
        for review_id, indexes in by_review.items():
            # Taken out of ``known`` until stored: a failure leaves the review to be read again.
            view = stored[review_id] = known.views.pop(review_id)
            steps = tracked[review_id] = []
            for index in indexes:
                applied = results[index] = apply_event(view, events[index])
                steps.append((events[index], view, applied.view))
                view = applied.view
            final[review_id] = view

        changed = [(stored[review_id], view) for review_id, view in final.items() if view is not stored[review_id]]
        not_stored = await self._views.save_many([(before, after) for before, after in changed if after is not None])
        for review_id in not_stored:
            for index in by_review[review_id]:
                results[index] = None
        done = [review_id for review_id in by_review if review_id not in not_stored]

        await self._reconcile_timers(
            {review_id: view for review_id in done if (view := final[review_id]) is not None}, known
        )
        if self._after_tracking is not None:
            await self._after_tracking.track_many([step for review_id in done for step in tracked[review_id]])
        for review_id in done:
            known.views[review_id] = final[review_id]
        return results

    async def _reconcile_timers(self, views: dict[str, ReviewView], known: KnownReviews) -> None:
        unread = [review_id for review_id in views if review_id not in known.timers]
        if unread:
            known.timers.update(await self._timers.timers_of(unread))
        plans: dict[str, TimerPlan] = {
            review_id: (plan_timers(view, self._policy), known.timers.pop(review_id))
            for review_id, view in views.items()
        }
        for review_id, timers in (await self._timers.reconcile_many(plans)).items():
            if timers is not None:
                known.timers[review_id] = timers
