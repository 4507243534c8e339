"""Remediation verification, the service side: keep the evaluations planned, and fire them exactly once in effect.

``VerificationTracking`` runs after each tracked review event: it records recurrences (for the earlier review) and
reconciles the review's verification timers to what its view plans. ``RemediationVerifier.sweep_once(now)`` claims
due attempts with a lease (``verification_timers``), asks Prometheus (and Alertmanager, when one is configured, for
alert verifications; or the recorded recurrences), judges, stores
the event on the timer, publishes it to ``followups.events``, adds the next attempt when the answer was
``inconclusive``, and marks the attempt fired.

A replica killed mid-evaluation leaves its lease to run out; the next one evaluates the attempt again and publishes
under the same event id (the attempt's timer id names it). It asks about the same moments (window end, done time),
so its verdict differs only if Prometheus' data did (late samples, or Prometheus unreachable the first time), or, for an
alert, if Alertmanager's alerts did (it only answers about the present).
Once an evaluation's event is stored on the timer, whoever fires it publishes exactly those bytes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream.kafka import KafkaBroker

from schemas import AnyReviewEvent, RemediationVerified, ReviewRecurred
from schemas.verification import Verdict, VerificationMethod
from servicekit.clock import Clock
from servicekit.passes import repeat_passes
from services.followup.alertmanager import AlertmanagerClient
from services.followup.domain.answers import AlertsAnswer, Answer
from services.followup.domain.projection import ReviewView
from services.followup.domain.verification import (
    Answers,
    PlannedVerification,
    Question,
    VerificationPolicy,
    VerificationRequest,
    judge,
    plan_verifications,
    questions,
    remediation_verified,
)
from services.followup.ports import TrackedEvent
from services.followup.prometheus import PrometheusClient
from services.followup.recurrences import RecurrenceRepository
from services.followup.review_views import ReviewViewRepository
from services.followup.verification_metrics import VerificationMetrics
from services.followup.verification_timers import ClaimedVerification, VerificationTimerRepository

log = logging.getLogger(__name__)

PublishVerdict = Callable[[RemediationVerified, str], Awaitable[None]]


def kafka_verdict_publisher(broker: KafkaBroker, topic: str) -> PublishVerdict:
    async def publish(event: RemediationVerified, payload: str) -> None:
        await broker.publish(
            payload.encode(),
            topic=topic,
            key=event.review_id.encode(),
            headers={"content-type": "application/json", "event-id": str(event.event_id), "event-type": event.type},
        )

    return publish


class VerificationTracking:
    """What tracking a review event means for verifications (called by ``ReviewTracker`` after the view is stored)."""

    def __init__(
        self, timers: VerificationTimerRepository, recurrences: RecurrenceRepository, policy: VerificationPolicy
    ) -> None:
        self._timers = timers
        self._recurrences = recurrences
        self._policy = policy

    async def track(self, event: AnyReviewEvent, before: ReviewView | None, after: ReviewView | None) -> None:
        if isinstance(event, ReviewRecurred):
            await self._recurrences.record(event)
        planned = () if after is None else plan_verifications(after, self._policy)
        # Most reviews never plan an evaluation: then there is nothing to keep, nor to cancel, and nothing is written.
        if planned or (before is not None and plan_verifications(before, self._policy)):
            await self._timers.reconcile(event.review_id, planned)

    async def track_many(self, tracked: Sequence[TrackedEvent]) -> None:
        """``track`` for a batch's events, in order, in one write per collection.

        Each review's verification timers are reconciled once, to what its last view plans, if any view it went
        through planned something (so a redelivered event still repairs them, as ``track`` does): the sequence of
        per-event reconciles ends in the same state, since each one makes the pending series exactly its plan.
        """
        await self._recurrences.record_many([event for event, _, _ in tracked if isinstance(event, ReviewRecurred)])
        last: dict[str, ReviewView | None] = {}
        touched: set[str] = set()
        for event, before, after in tracked:
            last[event.review_id] = after
            if any(view is not None and plan_verifications(view, self._policy) for view in (before, after)):
                touched.add(event.review_id)
        plans: dict[str, tuple[PlannedVerification, ...]] = {}
        for review_id in sorted(touched):
            view = last[review_id]
            plans[review_id] = () if view is None else plan_verifications(view, self._policy)
        await self._timers.reconcile_many(plans)


@dataclass(frozen=True)
class Fired:
    timer: ClaimedVerification
    event: RemediationVerified


class RemediationVerifier:
    def __init__(
        self,
        timers: VerificationTimerRepository,
        views: ReviewViewRepository,
        recurrences: RecurrenceRepository,
        prometheus: PrometheusClient,
        publish: PublishVerdict,
        *,
        policy: VerificationPolicy,
        replica_id: str,
        lease: timedelta,
        batch_size: int,
        metrics: VerificationMetrics | None = None,
        alertmanager: AlertmanagerClient | None = None,
    ) -> None:
        self._timers = timers
        self._views = views
        self._recurrences = recurrences
        self._prometheus = prometheus
        self._alertmanager = alertmanager
        self._publish = publish
        self._policy = policy
        self.replica_id = replica_id
        self._lease = lease
        self._batch_size = batch_size
        self._metrics = metrics
        self._stopping = asyncio.Event()

    async def sweep_once(self, now: datetime) -> list[Fired]:
        """Evaluate and publish the attempts due at ``now`` (up to the batch size); returns those this replica fired."""
        fired: list[Fired] = []
        while len(fired) < self._batch_size and not self._stopping.is_set():
            timer = await self._timers.claim_due(now, self.replica_id, now + self._lease)
            if timer is None:
                break
            try:
                done = await self._fire(timer, now)
            except Exception:
                await self._timers.release(timer.timer_id, self.replica_id)
                raise
            if done is not None:
                fired.append(done)
        if self._metrics is not None:
            await self._metrics.refresh(self._timers, self._views, now)
        return fired

    async def _fire(self, timer: ClaimedVerification, now: datetime) -> Fired | None:
        request = await self._planned_request(timer)
        if request is None:
            # Cancelled since it was planned (a race with the review's events): done, without a verdict.
            await self._timers.mark_fired(timer.timer_id, self.replica_id, now, skipped=True)
            log.info("verification %s is no longer planned: dropped", timer.timer_id)
            return None
        payload = timer.payload
        if payload is None:
            evaluated = await self._evaluate(request, timer, now)
            payload = evaluated.model_dump_json()
            if not await self._timers.store_verdict(timer.timer_id, self.replica_id, payload, evaluated.verdict):
                log.warning("verification %s was taken over or cancelled while it was evaluated", timer.timer_id)
                return None
        event = RemediationVerified.model_validate_json(payload)
        await self._publish(event, payload)
        if event.verdict is Verdict.INCONCLUSIVE:
            # Before marking this attempt fired: a replica that dies in between leaves the next one to add it again.
            due = now + self._policy.retry_delay(timer.attempt)
            await self._timers.add_attempt(timer.request, timer.attempt + 1, due, timer.first_due_at)
        if not await self._timers.mark_fired(timer.timer_id, self.replica_id, now):
            log.warning("verification %s was taken over by another replica before it was marked fired", timer.timer_id)
            return None
        if self._metrics is not None:
            self._metrics.evaluated(event)
        return Fired(timer, event)

    async def _planned_request(self, timer: ClaimedVerification) -> VerificationRequest | None:
        """The evaluation as the review's current view plans it (same plan and times, current owner and titles)."""
        view = await self._views.get(timer.request.review_id)
        if view is None:
            return None
        planned = plan_verifications(view, self._policy)
        return next((one.request for one in planned if one.request.series == timer.series), None)

    async def _evaluate(
        self, request: VerificationRequest, timer: ClaimedVerification, now: datetime
    ) -> RemediationVerified:
        asked = questions(request)
        observed, baseline, coverage, firing_now = await asyncio.gather(
            self._ask(asked.observed),
            self._ask(asked.baseline),
            self._ask(asked.coverage),
            self._ask_alertmanager(asked.alert_matchers),
        )
        recurrences = (
            await self._recurrences.linked_to(request.review_id)
            if request.plan.method is VerificationMethod.RECURRENCE
            else ()
        )
        judged_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        judgement = judge(request, asked, Answers(observed, baseline, coverage, firing_now), recurrences, judged_at)
        return remediation_verified(request, timer.attempt, timer.due_at, judgement)

    async def _ask(self, question: Question | None) -> Answer | None:
        return None if question is None else await self._prometheus.instant(question.expression, question.at)

    async def _ask_alertmanager(self, matchers: tuple[tuple[str, str], ...] | None) -> AlertsAnswer | None:
        if matchers is None or self._alertmanager is None or not self._alertmanager.configured:
            return None
        return await self._alertmanager.firing(matchers)

    async def run(self, clock: Clock, interval_seconds: float) -> None:

        async def one_sweep() -> int:
            return len(await self.sweep_once(clock.now()))

        await repeat_passes(
            one_sweep,
            batch_size=self._batch_size,
            interval_seconds=interval_seconds,
            stopping=self._stopping,
            on_failure=lambda _exc, wait: log.exception("verification sweep failed; retrying in %.1fs", wait),
        )

    def stop(self) -> None:
        self._stopping.set()
