"""Recording the keys ingest published while the next batch is being parsed, settled before it looks up its own.

Recording a batch's keys is one write to MongoDB, and the longest wait of a batch: 17 ms for 100 keys on the test
server, 40% of the batch. It only has to happen after Kafka acknowledged the incidents (a key recorded for an
incident Kafka never got would suppress that incident: a loss) and before anything looks those keys up again (the
next batch's de-duplication). So the write starts as the batch ends, and the next batch parses its records while
it runs: ``settled`` is awaited between the two.

What this changes, and what it does not:

- The batch's offsets are committed once its incidents are acknowledged, as before, possibly while the write is
  still running; de-duplication within the consumer is unchanged, since every look-up waits for the writes before it.
- A write that fails for an outage keeps its keys owed: ``settled`` raises it, so the next batch is rewound and
  tried again after a pause, and the owed keys are written first. A write that fails for another reason (none is
  known) is logged with how many keys it forgets; it never dead-letters the records of the batch that waits for it.
- A crash before the write lands forgets that one batch's keys. A vendor re-sending one of those closures within
  the window is then published again: the duplicate a crash has always been able to cause (before, the batch was
  redelivered and re-published), and harmless, since review keeps one review per incident.
- On shutdown the owed keys are written after the consumer has stopped (``flushed``, from the app's lifespan); an
  outage then is logged with how many keys stay unrecorded, and the service still stops cleanly.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from servicekit.failures import describe, is_outage

log = logging.getLogger(__name__)


class RecentlyPublished(Protocol):
    """Which incident keys were published within ``window`` (MongoDB in production: ``RecentClosures``)."""

    window: timedelta

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]: ...

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        """Called only after Kafka acknowledged the publishes of ``keys``."""


class BackgroundRecording:
    """The keys published by earlier batches, written by one task at a time, oldest first."""

    def __init__(self, recent: RecentlyPublished) -> None:
        self._recent = recent
        self._owed: deque[tuple[list[str], datetime]] = deque()
        self._writing: asyncio.Task[None] | None = None

    def record(self, keys: Iterable[str], now: datetime) -> None:
        """Start writing ``keys`` (acknowledged by Kafka) as published at ``now``; call ``settled`` before the next."""
        wanted = list(keys)
        if not wanted:
            return
        self._owed.append((wanted, now))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_owed())

    async def settled(self) -> None:
        """Return once every key recorded so far is written; raise an outage that stopped that (the keys stay owed)."""
        writing, self._writing = self._writing, None
        try:
            if writing is not None:
                await writing
            await self._write_owed()  # what a failed write left owed
        except Exception as exc:
            if is_outage(exc):
                raise
            forgotten = sum(len(keys) for keys, _ in self._owed)
            self._owed.clear()
            log.error(  # noqa: TRY400 (the cause is the message; the keys themselves are not)
                "could not record %d published incident keys (%s); a re-emission of one of those closures within the"
                " de-duplication window would be published again",
                forgotten,
                describe(exc),
            )

    async def flushed(self) -> None:
        """``settled`` on shutdown: an outage is logged with the keys it leaves unrecorded instead of raised."""
        try:
            await self.settled()
        except Exception as exc:
            unrecorded = sum(len(keys) for keys, _ in self._owed)
            log.warning(
                "stopping with %d published incident keys not recorded (%s); a re-emission of one of those closures"
                " within the de-duplication window would be published again",
                unrecorded,
                describe(exc),
            )

    async def _write_owed(self) -> None:
        while self._owed:
            keys, now = self._owed[0]
            await self._recent.remember(keys, now)
            self._owed.popleft()
