"""Bounded retries of one record's effect: an outage is raised at once, anything else is retried a few times."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from servicekit.failures import describe, is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Attempted(Generic[T]):
    """What ``with_bounded_retries`` ended with: the effect's result, or its last failure."""

    attempts: int
    result: T | None = None
    failure: Exception | None = None


async def with_bounded_retries(
    effect: Callable[[], Awaitable[T]], max_attempts: int, backoff_seconds: float
) -> Attempted[T]:
    """Run ``effect`` until it succeeds or fails ``max_attempts`` times (at least once); an outage is re-raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return Attempted(attempt, result=await effect())
        except Exception as exc:
            if is_outage(exc):
                raise
            if attempt >= max_attempts:
                return Attempted(attempt, failure=exc)
            log.warning("attempt %d/%d failed: %s; retrying", attempt, max_attempts, describe(exc))
            await asyncio.sleep(backoff_seconds * attempt)
