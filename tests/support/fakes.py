"""Fakes that behave like the adapters they stand in for (cosmicpython: fakes over mocks)."""

from collections.abc import Iterable
from datetime import datetime, timedelta


class InMemoryRecentClosures:
    """Like ``services.ingest.recent_closures.RecentClosures``, in a dict."""

    def __init__(self, window: timedelta = timedelta(days=1)) -> None:
        self.window = window
        self.published_at: dict[str, datetime] = {}

    async def published_since(self, keys: Iterable[str], since: datetime) -> set[str]:
        return {key for key in keys if key in self.published_at and self.published_at[key] >= since}

    async def remember(self, keys: Iterable[str], now: datetime) -> None:
        for key in keys:
            self.published_at[key] = now
