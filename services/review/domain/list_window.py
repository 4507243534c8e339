"""Which stretch of the reviews list to read for a page: growing windows of list positions.

Every review gets an increasing ``list_position`` when it is opened, so "newest first" is "highest position first" and
a page lies among the highest positions. The server reads every review in an index range whatever the limit, so the
listing reads a window of positions just below the top (``position > lowest``), large enough for the page it wants if
matches are common, and grows the window geometrically when they are rarer: a page costs a few reads of a window about
as large as the page needs, not a read of every review unless matches are rare. The last window covers every
position.
"""

from collections.abc import Iterator
from dataclasses import dataclass

# The first window holds this many positions per review wanted, and each next window this many times the last.
FIRST_WINDOW_FACTOR = 4
GROWTH = 4


@dataclass(frozen=True)
class Window:
    """The positions above ``lowest``; ``covers_all``: no position is at or below it (every review is inside)."""

    lowest: int
    covers_all: bool


def windows(top: int, bottom: int, wanted: int) -> Iterator[Window]:
    """The windows to read in turn for ``wanted`` matches, positions running from ``bottom`` to ``top`` inclusive.

    Each window contains the previous one; the last covers every position (an empty list: one window covering all).
    """
    if wanted < 1:
        raise ValueError("a page wants at least one review")
    span = top - bottom + 1
    size = FIRST_WINDOW_FACTOR * wanted
    # A window larger than a quarter of the list costs nearly what the whole does: read the whole instead, so a
    # filter that matches rarely or never reads at most about 1.5 times the list.
    while size * GROWTH <= span:
        yield Window(lowest=top - size, covers_all=False)
        size *= GROWTH
    yield Window(lowest=bottom - 1, covers_all=True)


def positions_for_batch(top_after: int, count: int) -> list[int]:
    """The positions of a batch of ``count`` reviews, in opening order, once the counter moved to ``top_after``."""
    return list(range(top_after - count + 1, top_after + 1))


def positions_below(bottom_after: int, count: int) -> list[int]:
    """The positions of ``count`` reviews older than every positioned one, newest first, once the counter's lowest
    position moved down to ``bottom_after``."""
    return list(range(bottom_after + count - 1, bottom_after - 1, -1))
