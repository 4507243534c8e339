"""The outbox relay: publishes stored review events to Kafka, then marks them sent.

- An entry is what one transaction wrote for one review: that review's events of the transaction, in order. Each
  event goes out as its own Kafka record (its payload, the review as key, ``event-id``, ``event-type`` and
  content-type headers), exactly as when every event was an entry of its own; the entry is marked sent once all of
  them were acknowledged.
- A crash between a write and its publication loses nothing: the entry waits in MongoDB and the next pass (after a
  restart, or on another replica) publishes it.
- A crash between publish and mark re-publishes the entry: consumers see the same ``event_id`` again (a duplicate
  they recognise), never a lost event. Likewise when an event fails in the middle of an entry: the entry stays
  unsent and the next pass publishes all its events again, the ones already acknowledged with the same event ids.
- One relay at a time: a pass first takes (or renews) a lease in MongoDB. With several replicas, the others wait,
  so the events of one review leave in the order they were written and each goes out once. A relay that dies is
  replaced when its lease runs out; one that outlives its lease mid-pass may send an entry twice, which the event
  id makes harmless.
- A pass costs three round trips when there is anything to send (lease, pending entries, mark sent), however many
  entries: different reviews' entries are in flight together, one review's events go one after the other. Behind a
  full batch (a backlog), the next batch's read is bounded by an order key and costs one or two more.
- Rolling deploy: entries written before grouping (one event each) are published as entries of one event. A relay
  of the version before grouping cannot read a grouped entry (it has no top-level ``payload``): its pass fails
  before it publishes or marks anything of that batch, and it keeps the lease, so the outbox waits until the old
  replicas are gone; then the new relay publishes everything in order. Delayed, never lost or reordered. (Grouped
  entries deliberately carry no top-level ``payload``: an old relay would publish that one event and mark the whole
  entry sent.)
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from faststream.kafka import KafkaBroker

from services.review.domain.outbox_order import window_end
from services.review.ports import Outbox, OutboxEntry, OutboxEvent

log = logging.getLogger(__name__)

Publish = Callable[[OutboxEvent], Awaitable[None]]
Clock = Callable[[], datetime]

# After a failed pass (Kafka or MongoDB unavailable) try again this soon, even with a long poll interval.
RETRY_CEILING_SECONDS = 5.0


def relay_holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def kafka_publisher(broker: KafkaBroker) -> Publish:
    """Publishes an event to its topic, keyed by review, and returns once Kafka acknowledged it (``acks=all``)."""

    async def publish(event: OutboxEvent) -> None:
        await broker.publish(
            event.payload.encode(),
            topic=event.topic,
            key=event.key.encode(),
            headers={"content-type": "application/json", "event-id": event.event_id, "event-type": event.event_type},
        )

    return publish


class OutboxRelay:
    def __init__(
        self,
        repository: Outbox,
        publish: Publish,
        clock: Clock,
        poll_seconds: float,
        batch_size: int,
        *,
        lease_seconds: float = 15.0,
        holder: str | None = None,
    ) -> None:
        self._repository = repository
        self._publish = publish
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        self.holder = holder or relay_holder_name()
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Ask for a pass now rather than at the next poll: new entries go out with little delay."""
        self._wakeup.set()

    async def relay_once(self) -> int:
        """Publish every pending entry, oldest first, if this relay holds the lease; returns how many events were sent
        (those of the entries marked sent).

        The lease is taken (or renewed) once per pass, and again only before each further batch when the one before
        was full. A batch is ``batch_size`` entries (of one or more events each); one shorter means the outbox was
        drained: nothing more is asked for. What is written after that query wakes the relay again (or waits for its
        next poll).

        After a full batch there is a backlog: the next read is bounded by where that batch probably ends (twice the
        span of the one before), so that each read costs about a batch however long the backlog is.
        """
        sent = 0
        ends_before: str | None = None
        while await self._repository.hold_relay_lease(self.holder, self._clock(), self._lease_seconds):
            entries = await self._repository.unsent(self._batch_size, ends_before=ends_before)
            if entries:
                sent += await self._publish_in_order(entries)
            if len(entries) < self._batch_size:
                break
            ends_before = window_end(entries[0].order, entries[-1].order)
        return sent

    async def _publish_in_order(self, entries: list[OutboxEntry]) -> int:
        """Publish a batch: the events of one review one after the other, different reviews in flight together.

        A review's events leave in the order they were written: the next is sent only once Kafka acknowledged the
        one before (``acks=all``), so they reach the review's partition in that order. When one fails, its entry is
        not marked sent and the rest of that review's entries wait for the next pass (sending them would put them
        ahead of it); other reviews go on. The entries whose events were all acknowledged are marked sent in one
        write, even when the pass fails or is cancelled; then the first failure is raised. Returns how many events
        the marked entries hold.
        """
        by_review: dict[tuple[str, str], list[OutboxEntry]] = {}
        for entry in entries:
            by_review.setdefault((entry.topic, entry.key), []).append(entry)
        published: list[OutboxEntry] = []

        async def in_order(review_entries: list[OutboxEntry]) -> None:
            for entry in review_entries:
                for event in entry.events:
                    await self._publish(event)
                published.append(entry)

        try:
            outcomes = await asyncio.gather(*(in_order(chain) for chain in by_review.values()), return_exceptions=True)
        finally:
            await self._repository.mark_sent([entry.entry_id for entry in published], self._clock())
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(len(entry.events) for entry in published)

    async def run(self) -> None:
        try:
            while True:
                self._wakeup.clear()
                wait = self._poll_seconds
                try:
                    await self.relay_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    wait = min(self._poll_seconds, RETRY_CEILING_SECONDS)
                    log.exception("outbox relay pass failed; retrying in %.1fs", wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
        finally:
            # Hand over at once on a clean stop, instead of making other replicas wait for the lease to run out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._repository.release_relay_lease(self.holder))
