"""Gives reviews without a list position theirs, in the background, so start-up does not wait for it.

The first pass after an upgrade positions every review stored before positions existed (seconds per thousand reviews)
and sets the ``complete`` mark; until then the list answers from a plain query. Later passes, every
``poll_seconds``, position reviews that a replica of the previous version opened during a rolling deploy, so they
are listed within seconds; a pass with nothing to do reads no review. Replicas run it at the same time safely (see
``ReviewRepository.position_unlisted``).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ListPositioner:
    def __init__(self, position_unlisted: Callable[[], Awaitable[int]], poll_seconds: float) -> None:
        self._position_unlisted = position_unlisted
        self._poll_seconds = poll_seconds

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                positioned = await self._position_unlisted()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("giving reviews list positions failed; retrying in %.1fs", self._poll_seconds)
            else:
                if positioned:
                    log.info("gave %d reviews list positions in %.1fs", positioned, time.perf_counter() - started)
            await asyncio.sleep(self._poll_seconds)
