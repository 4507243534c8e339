"""The outbox relay: publishes stored review events to Kafka, then marks them sent.

A crash between publish and mark re-publishes the entry on restart: consumers see the same ``event_id`` again,
never a lost event.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from services.review.repository import OutboxEntry, ReviewRepository

log = logging.getLogger(__name__)

Publish = Callable[[OutboxEntry], Awaitable[None]]
Clock = Callable[[], datetime]


class OutboxRelay:
    def __init__(
        self,
        repository: ReviewRepository,
        publish: Publish,
        clock: Clock,
        poll_seconds: float,
        batch_size: int,
    ) -> None:
        self._repository = repository
        self._publish = publish
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Ask for a pass now rather than at the next poll: new entries go out with little delay."""
        self._wakeup.set()

    async def relay_once(self) -> int:
        """Publish every pending entry, oldest first; returns how many were sent."""
        sent = 0
        while entries := await self._repository.unsent(self._batch_size):
            published: list[str] = []
            try:
                for entry in entries:
                    await self._publish(entry)
                    published.append(entry.event_id)
            finally:
                await self._repository.mark_sent(published, self._clock())
            sent += len(published)
        return sent

    async def run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying after %.1fs", self._poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_seconds)
