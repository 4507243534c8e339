"""The review service layer: load the review, let the domain decide, store the change and its events atomically.

Used by the ``incidents.closed`` handler (opening reviews) and by the HTTP API (everything people do). Every write
states the version it read; a stale one raises ``StaleVersionError`` before or during the write, never after.
"""

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import AnyFollowupEvent, IncidentClosed, RemediationVerified, ReviewEvent, Verdict
from services.review.domain.batch_opening import open_batch
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    SectionEdit,
    TimelineEntryDraft,
    TimelineEntryEdit,
    add_action_item,
    add_timeline_entry,
    edit_sections,
    edit_timeline_entry,
    remove_timeline_entry,
    update_action_item,
)
from services.review.domain.followup_view import FollowupView, followup_of
from services.review.domain.policy import ReviewDecision, ReviewPolicy
from services.review.domain.postmortem import render_postmortem
from services.review.domain.record import Review, open_review
from services.review.domain.recurrence import link_recurrence, recurrence_query
from services.review.domain.refusals import ReviewRefusedError
from services.review.domain.verification import (
    ManualVerdict,
    Recorded,
    Unchanged,
    record_judged_verdict,
    record_manual_verdict,
)
from services.review.domain.workflow import Transition, transition
from services.review.metrics import ReviewMetrics
from services.review.ports import (
    ActionItemFilter,
    ActionItemRow,
    FollowupViewStore,
    ReviewFilter,
    ReviewNotFoundError,
    ReviewPage,
    ReviewStore,
    StaleVersionError,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Opening a review that recurs an earlier one also writes the earlier one; a person editing it at that moment makes
# the write stale, and opening starts over with a fresh read. More than this many collisions in a row is an error.
OPEN_ATTEMPTS = 5


@dataclass(frozen=True)
class Opened:
    review: Review | None  # None when the incident already had a review
    decision: ReviewDecision


class BatchNotOpenedError(Exception):
    """The batch could not be opened together (an incident got a review meanwhile, or an earlier review changed):
    nothing of it was written; opening its incidents one by one decides each."""


class _HeldAnnouncement:
    """Commits made inside ``announcing_once``: whether the relay has to be woken when the block ends."""

    pending = False


class ReviewService:
    def __init__(
        self,
        repository: ReviewStore,
        policy: ReviewPolicy,
        metrics: ReviewMetrics,
        *,
        events_topic: str,
        recurrence_window: timedelta,
        clock: Clock,
        on_commit: Callable[[], None] = lambda: None,
        followups: FollowupViewStore | None = None,
    ) -> None:
        self._repository = repository
        self._followups = followups
        self._policy = policy
        self._metrics = metrics
        self._topic = events_topic
        self._window = recurrence_window
        self._clock = clock
        self._on_commit = on_commit
        # Per task (a context variable): a batch being handled holds its wake-ups back, API requests never do.
        self._held: ContextVar[_HeldAnnouncement | None] = ContextVar(f"review-held-{id(self)}", default=None)

    def _now(self) -> datetime:
        # MongoDB keeps milliseconds: trimming here makes what a write returns equal what a later read gives.
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _committed(self) -> None:
        held = self._held.get()
        if held is None:
            self._on_commit()
        else:
            held.pending = True

    @contextmanager
    def announcing_once(self) -> Iterator[None]:
        """Changes committed in this block wake the outbox relay once, when it ends, instead of once each.

        It ends the same way when the block raises: what was committed before is announced. Only the calling task
        is affected; changes made meanwhile by other tasks (API requests) wake the relay at once, as ever.
        """
        held = _HeldAnnouncement()
        token = self._held.set(held)
        try:
            yield
        finally:
            self._held.reset(token)
            if held.pending:
                self._on_commit()

    async def incidents_with_review(self, incident_keys: Iterable[str]) -> set[str]:
        """Which of these incidents have a review already: one look-up for a whole batch of them."""
        return await self._repository.incident_keys_with_review(incident_keys)

    async def open_for_incident(self, incident: IncidentClosed) -> Opened:
        """Open the incident's review; ``Opened(None, ...)`` when it has one already, which changes nothing.

        No look-up first: the unique index on ``incident_key`` refuses the second review inside the transaction
        (before the earlier review of a recurrence is touched), so a duplicate writes nothing and announces nothing.
        """
        decision = self._policy.decide(incident)
        for _ in range(OPEN_ATTEMPTS):
            try:
                review = await self._open(incident, decision)
            except StaleVersionError as exc:
                log.info("earlier review %s changed while linking a recurrence; starting over", exc.review_id)
                continue
            if review is not None:
                self._metrics.policy_decisions.labels(review.status, decision.rule or "otherwise").inc()
            return Opened(review, decision)
        raise RuntimeError(f"could not open a review for {incident.incident_key}: the earlier review kept changing")

    async def open_for_incidents(self, incidents: Sequence[IncidentClosed]) -> list[Opened]:
        """Open a batch's reviews in one transaction, as ``open_for_incident`` one after the other would: same links.

        In partition order, one ``Opened`` per incident; an incident seen earlier in the batch gets ``Opened(None)``.
        Incidents known to have a review are best left out (``incidents_with_review``): one that has one makes the
        whole batch fail with ``BatchNotOpenedError``, as does an earlier review changed meanwhile. Each review is
        opened a millisecond after the one before at least, so the batch's occurrence order is partition order as
        when they are opened one by one.
        """
        decisions = [self._policy.decide(incident) for incident in incidents]
        seen: set[str] = set()
        openings = []
        at = None
        for incident, decision in zip(incidents, decisions, strict=True):
            if incident.incident_key in seen:
                continue
            seen.add(incident.incident_key)
            at = self._now() if at is None else max(self._now(), at + timedelta(milliseconds=1))
            review, opened = open_review(incident, decision, at)
            openings.append((review, opened, at))
        queries = [query for review, _, _ in openings if (query := recurrence_query(review, self._window)) is not None]
        stored = await self._repository.latest_occurrences(queries)
        batch = open_batch(
            openings, {query.review_id: found for query, found in zip(queries, stored, strict=True)}, self._window
        )
        try:
            stored_all = await self._repository.open_reviews(batch, self._topic)
        except StaleVersionError as exc:
            raise BatchNotOpenedError(f"earlier review {exc.review_id} changed meanwhile") from exc
        if not stored_all:
            raise BatchNotOpenedError("an incident of the batch got its review meanwhile")
        if batch.opened:
            self._committed()
        by_key = {opened.review.incident_key: opened for opened in batch.opened}
        outcome: list[Opened] = []
        for incident, decision in zip(incidents, decisions, strict=True):
            new = by_key.pop(incident.incident_key, None)
            if new is None:
                outcome.append(Opened(None, decision))
                continue
            self._metrics.policy_decisions.labels(new.review.status, decision.rule or "otherwise").inc()
            if new.earlier is not None:
                self._metrics.recurrences.labels(str(new.review.recurred_after_remediation).lower()).inc()
            outcome.append(Opened(new.review, decision))
        return outcome

    async def _open(self, incident: IncidentClosed, decision: ReviewDecision) -> Review | None:
        now = self._now()
        review, opened = open_review(incident, decision, now)
        events: list[ReviewEvent] = [opened]
        linked_earlier = None
        query = recurrence_query(review, self._window)
        earlier = await self._repository.earlier_occurrence(query) if query is not None else None
        if earlier is not None:
            link = link_recurrence(review, earlier, now)
            review = link.new
            events += [link.recurred, link.earlier_updated, *link.earlier_items_recurred]
            linked_earlier = (link.earlier, earlier.version)
        if not await self._repository.open_review(review, events, self._topic, now, linked_earlier=linked_earlier):
            return None
        if earlier is not None:
            self._metrics.recurrences.labels(str(review.recurred_after_remediation).lower()).inc()
        self._committed()
        return review

    async def get(self, review_id: str) -> Review:
        review = await self._repository.get(review_id)
        if review is None:
            raise ReviewNotFoundError(review_id)
        return review

    async def find(self, where: ReviewFilter, *, limit: int, offset: int) -> tuple[list[Review], int]:
        """One page and exactly how many match (the API's ``X-Total-Count``)."""
        return await self._repository.find(where, self._now(), limit=limit, offset=offset)

    async def find_page(self, where: ReviewFilter, *, limit: int, offset: int) -> ReviewPage:
        """One page and how many match, possibly only a lower bound when an exact count would read every review."""
        return await self._repository.find_page(where, self._now(), limit=limit, offset=offset, exact_total=False)

    async def unfinished_action_items(
        self, where: ActionItemFilter, *, limit: int, offset: int
    ) -> tuple[list[ActionItemRow], int]:
        """Open and in-progress action items across reviews, soonest due first, and how many match."""
        return await self._repository.unfinished_action_items(where, self._now(), limit=limit, offset=offset)

    async def export_markdown(self, review_id: str) -> tuple[Review, str]:
        review = await self.get(review_id)
        return review, render_postmortem(review)

    async def _current(self, review_id: str, read_version: int) -> Review:
        """The review as stored, if the writer read this very version (checked again, atomically, on write)."""
        review = await self.get(review_id)
        if review.version != read_version:
            self._metrics.stale_writes.inc()
            raise StaleVersionError(review_id, read_version, review.version)
        return review

    async def _store(self, review: Review, read_version: int, event: ReviewEvent) -> Review:
        try:
            await self._repository.save(review, read_version, [event], self._topic, self._now())
        except StaleVersionError:
            self._metrics.stale_writes.inc()
            raise
        self._committed()
        return review

    async def edit_sections(self, review_id: str, read_version: int, edit: SectionEdit, by: str | None) -> Review:
        review = await self._current(review_id, read_version)
        change = edit_sections(review, edit, by=by, now=self._now())
        return review if change is None else await self._store(change[0], read_version, change[1])

    async def add_timeline_entry(
        self, review_id: str, read_version: int, entry: TimelineEntryDraft, by: str | None
    ) -> Review:
        review = await self._current(review_id, read_version)
        edited, event = add_timeline_entry(review, entry, by=by, now=self._now())
        return await self._store(edited, read_version, event)

    async def edit_timeline_entry(
        self, review_id: str, entry_id: str, read_version: int, edit: TimelineEntryEdit, by: str | None
    ) -> Review:
        review = await self._current(review_id, read_version)
        change = edit_timeline_entry(review, entry_id, edit, by=by, now=self._now())
        return review if change is None else await self._store(change[0], read_version, change[1])

    async def remove_timeline_entry(self, review_id: str, entry_id: str, read_version: int, by: str | None) -> Review:
        review = await self._current(review_id, read_version)
        edited, event = remove_timeline_entry(review, entry_id, by=by, now=self._now())
        return await self._store(edited, read_version, event)

    async def add_action_item(
        self, review_id: str, read_version: int, draft: ActionItemDraft, by: str | None
    ) -> Review:
        review = await self._current(review_id, read_version)
        edited, event = add_action_item(review, draft, by=by, now=self._now())
        return await self._store(edited, read_version, event)

    async def update_action_item(
        self, review_id: str, item_id: str, read_version: int, edit: ActionItemEdit, by: str | None
    ) -> Review:
        review = await self._current(review_id, read_version)
        change = update_action_item(review, item_id, edit, by=by, now=self._now())
        return review if change is None else await self._store(change[0], read_version, change[1])

    async def transition(self, review_id: str, read_version: int, request: Transition, by: str | None) -> Review:
        review = await self._current(review_id, read_version)
        moved, event = transition(review, request, by=by, now=self._now())
        return await self._store(moved, read_version, event)

    async def _store_all(self, review: Review, read_version: int, events: Sequence[ReviewEvent]) -> Review:
        try:
            await self._repository.save(review, read_version, events, self._topic, self._now())
        except StaleVersionError:
            self._metrics.stale_writes.inc()
            raise
        self._committed()
        return review

    def _counted(self, recorded: Recorded, recorded_by: str) -> None:
        self._metrics.verdicts_recorded.labels(recorded.verdict, recorded_by, str(recorded.reopened).lower()).inc()

    async def record_manual_verdict(
        self, review_id: str, item_id: str, read_version: int, verdict: ManualVerdict, *, by: str, admin: bool
    ) -> Review:
        """A verifier's verdict on a done item with a manual verification (see ``domain/verification.py``)."""
        review = await self._current(review_id, read_version)
        recorded = record_manual_verdict(
            review,
            item_id,
            verdict,
            by=by,
            admin=admin,
            now=self._now(),
            new_item_required=self._policy.verification.new_action_item_when_not_effective,
        )
        stored = await self._store_all(recorded.review, read_version, recorded.events)
        self._counted(recorded, "person")
        return stored

    async def record_remediation_verdict(self, event: RemediationVerified) -> Recorded | Unchanged:
        """Follow-up's verdict recorded on the item, once, if it is the latest that counts; announced atomically.

        A person editing the review at the same moment makes the write stale: it starts over from a fresh read.
        """
        for _ in range(OPEN_ATTEMPTS):
            review = await self.get(event.review_id)
            outcome = record_judged_verdict(
                review,
                event,
                now=self._now(),
                new_item_required=self._policy.verification.new_action_item_when_not_effective,
            )
            if isinstance(outcome, Unchanged):
                return outcome
            try:
                await self._repository.save(outcome.review, review.version, outcome.events, self._topic, self._now())
            except StaleVersionError:
                continue
            self._committed()
            self._counted(outcome, "followup")
            return outcome
        raise RuntimeError(f"could not record {event.event_id} on review {event.review_id}: it kept changing")

    async def apply_followup_event(self, event: AnyFollowupEvent) -> None:
        """What follow-up did, kept beside the record; a remediation verdict is also recorded on its item."""
        if isinstance(event, RemediationVerified):
            outcome = await self.record_remediation_verdict(event)
            if isinstance(outcome, Unchanged):
                log.info(
                    "verdict %s on %s/%s not recorded: %s",
                    event.event_id,
                    event.review_id,
                    event.action_item_id,
                    outcome.reason,
                )
        if self._followups is not None:
            await self._followups.apply(event, self._now)

    async def followup(self, review_id: str) -> FollowupView:
        """What follow-up did and will do for this review (reminders, overdue, escalation, checks, verdicts)."""
        return await self.followup_of(await self.get(review_id))

    async def followup_of(self, review: Review) -> FollowupView:
        """``followup`` for a review already read (a page drawing it reads it once)."""
        view = await self._followups.get(review.id) if self._followups is not None else None
        return followup_of(review, view)

    def may_record_verdict(self, review: Review, item_id: str, *, by: str, admin: bool) -> bool:
        """Whether ``record_manual_verdict`` would take a verdict from ``by`` on this item now (nothing is stored).

        The same domain rule is asked with a stand-in verdict, so a page offers the form exactly when the service
        would accept it; the service still decides when the form is sent.
        """
        stand_in = ManualVerdict(verdict=Verdict.INCONCLUSIVE, evidence="(the form is offered)")
        try:
            record_manual_verdict(
                review, item_id, stand_in, by=by, admin=admin, now=self._now(), new_item_required=False
            )
        except ReviewRefusedError:
            return False
        return True
