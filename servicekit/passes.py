"""The loop behind every background sweep: one pass, then the next at once or after a pause, until stopped."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


async def repeat_passes(
    one_pass: Callable[[], Awaitable[int]],
    *,
    batch_size: int,
    interval_seconds: float,
    stopping: asyncio.Event,
    on_failure: Callable[[Exception, float], None],
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``one_pass`` (it returns how much it handled) until ``stopping`` is set.

    A full batch is followed by another pass at once: a backlog drains without waiting. Otherwise the next pass comes
    after ``interval_seconds``, or as soon as ``wake`` (or ``stopping``) is set. A pass that fails is reported to
    ``on_failure`` (called inside the ``except``, so it may log the traceback) and retried after the interval: a
    sweep must outlive a database or broker blip.
    """
    woken = wake or stopping
    while not stopping.is_set():
        if wake is not None:
            wake.clear()
        handled = 0
        try:
            handled = await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_failure(exc, interval_seconds)
        if handled >= batch_size:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), timeout=interval_seconds)
