"""The timer scheduler: fires due timers exactly once across replicas.

Each due timer is claimed with a lease (``find_one_and_update``), its event is published to ``followups.events``
(``acks=all``, idempotent producer), then it is marked fired. A replica that dies after publishing and before marking
leaves the lease to run out; another replica then takes the timer over and publishes the same event again (same
``event_id``, same bytes), so consumers see at-least-once delivery that they can de-duplicate, and no timer is lost.

``sweep_once(now)`` is the whole algorithm and takes the time as an argument: tests call it directly with an
injected clock; ``run`` only calls it periodically.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from faststream.kafka import KafkaBroker

from servicekit.clock import Clock
from servicekit.passes import repeat_passes
from services.followup.metrics import FollowupMetrics
from services.followup.ports import BacklogCounter, ClaimedTimer, DueTimers

log = logging.getLogger(__name__)

Publish = Callable[[ClaimedTimer], Awaitable[None]]
# Called after each successful sweep with the timers this replica fired and those it found expired.
AfterSweep = Callable[[datetime, list[ClaimedTimer], list[ClaimedTimer]], Awaitable[None]]


async def _nothing_after_sweep(_now: datetime, _fired: list[ClaimedTimer], _expired: list[ClaimedTimer]) -> None:
    return None


def kafka_publisher(broker: KafkaBroker, topic: str) -> Publish:
    """Publishes a fired timer's stored event, keyed by review so a review's follow-ups stay in order."""

    async def publish(timer: ClaimedTimer) -> None:
        # The broker waits for the acknowledgement (acks=all, idempotent producer) before the timer is marked fired.
        await broker.publish(
            timer.payload.encode(),
            topic=topic,
            key=timer.review_id.encode(),
            headers={"content-type": "application/json", "event-id": timer.event_id, "event-type": timer.event_type},
        )

    return publish


def counting_sweeps(metrics: FollowupMetrics, views: BacklogCounter) -> AfterSweep:
    """After each sweep: count what fired or expired, and recount the backlog (overdue changes with time alone)."""

    async def after_sweep(now: datetime, fired: list[ClaimedTimer], expired: list[ClaimedTimer]) -> None:
        for timer in fired:
            metrics.record_fired(timer)
        for timer in expired:
            metrics.timers_expired.labels(timer.kind).inc()
        metrics.last_sweep.set(now.timestamp())
        await metrics.refresh_backlog(views, now)

    return after_sweep


class TimerScheduler:
    def __init__(
        self,
        timers: DueTimers,
        publish: Publish,
        *,
        replica_id: str,
        lease: timedelta,
        batch_size: int,
        after_sweep: AfterSweep = _nothing_after_sweep,
    ) -> None:
        self._timers = timers
        self._publish = publish
        self.replica_id = replica_id
        self._lease = lease
        self._batch_size = batch_size
        self._after_sweep = after_sweep
        self._stopping = asyncio.Event()

    async def claim_next(self, now: datetime) -> ClaimedTimer | None:
        return await self._timers.claim_due(now, self.replica_id, now + self._lease)

    async def publish(self, timer: ClaimedTimer) -> None:
        await self._publish(timer)

    async def mark_fired(self, timer: ClaimedTimer, now: datetime) -> bool:
        marked = await self._timers.mark_fired(timer.timer_id, self.replica_id, now)
        if not marked:
            # Our lease ran out and another replica took over: it publishes (or did) the same event id.
            log.warning("timer %s was taken over by another replica before it was marked fired", timer.timer_id)
        return marked

    async def sweep_once(self, now: datetime) -> list[ClaimedTimer]:
        """Fire the timers due at ``now`` (up to the batch size), earliest first; returns those this replica fired.

        A timer that expired unsent (see ``PlannedTimer.expires_at``) is marked done without publishing.
        """
        fired: list[ClaimedTimer] = []
        expired: list[ClaimedTimer] = []
        while len(fired) < self._batch_size and not self._stopping.is_set():
            timer = await self.claim_next(now)
            if timer is None:
                break
            if timer.expired(now):
                # Its moment passed before anyone fired it: record it as done without sending it.
                if await self._timers.mark_fired(timer.timer_id, self.replica_id, now, skipped=True):
                    expired.append(timer)
                log.info("timer %s expired unsent at %s", timer.timer_id, timer.expires_at)
                continue
            try:
                await self.publish(timer)
            except Exception:
                # Give the lease back: the next sweep retries at once instead of after the lease runs out.
                await self._timers.release(timer.timer_id, self.replica_id)
                raise
            if await self.mark_fired(timer, now):
                fired.append(timer)
        await self._after_sweep(now, fired, expired)
        return fired

    async def run(self, clock: Clock, interval_seconds: float) -> None:
        """Sweep every ``interval_seconds`` until ``stop``; a full batch is followed by another sweep at once."""

        async def one_sweep() -> int:
            return len(await self.sweep_once(clock.now()))

        await repeat_passes(
            one_sweep,
            batch_size=self._batch_size,
            interval_seconds=interval_seconds,
            stopping=self._stopping,
            on_failure=lambda _exc, wait: log.exception("timer sweep failed; retrying in %.1fs", wait),
        )

    def stop(self) -> None:
        """Finish the timer in hand, then stop sweeping."""
        self._stopping.set()
