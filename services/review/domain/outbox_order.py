"""The order the outbox relay sends entries in, as one string: ``order_key(created_at, version, seq, event_id)``.

Entries go out oldest first; entries written at the same moment by version, then by their position in the
transaction that wrote them (``seq``), then by event id. One string whose plain order is exactly that order lets a
database serve "the oldest pending entries" from an index on ``(sent_at, order)`` with a one-field sort, and lets a
relay bound a read by an order key (``window_end``).

The time is the one stored with the entry: BSON dates hold milliseconds, so the key does too. Two entries of one
millisecond are then ordered by version, as they were before the key existed, rather than by a sub-millisecond
difference between two replicas' clocks.
"""

from datetime import UTC, datetime, timedelta

VERSION_DIGITS = 10
SEQ_DIGITS = 6
SEPARATOR = "|"
# The smallest window a relay asks for: entries are timed to the millisecond.
MIN_WINDOW = timedelta(milliseconds=1)


def _in_utc(moment: datetime) -> datetime:
    # A date read back by a client that is not tz-aware is naive UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_key(moment: datetime) -> str:
    """``moment`` to the millisecond, fixed width (``2026-11-30T15:50:09.123Z``): string order is time order."""
    moment = _in_utc(moment)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def order_key(created_at: datetime, version: int, seq: int, event_id: str) -> str:
    """Sorts as ``(created_at to the millisecond, version, seq, event_id)`` does: every part before the id is of
    fixed width, so the first part that differs decides, as in a tuple."""
    if not 0 <= version < 10**VERSION_DIGITS:
        raise ValueError(f"an outbox entry's version must be from 0 to {10**VERSION_DIGITS - 1}, not {version}")
    if not 0 <= seq < 10**SEQ_DIGITS:
        raise ValueError(f"an outbox entry's seq must be from 0 to {10**SEQ_DIGITS - 1}, not {seq}")
    return SEPARATOR.join((time_key(created_at), f"{version:0{VERSION_DIGITS}d}", f"{seq:0{SEQ_DIGITS}d}", event_id))


def key_time(key: str) -> datetime:
    """The time an order key starts with."""
    return datetime.strptime(key.split(SEPARATOR, 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def window_end(first: str, last: str) -> str:
    """Where the batch after one spanning ``first`` to ``last`` (order keys) probably ends: twice that batch's span
    past its last entry. Entries keep arriving at about the rate they did, so about two batches' worth of entries
    are older than this bound: a read limited to them costs a batch or two, not the whole backlog.

    A time key alone: it sorts after every key of an earlier time and before every key of its own time.
    """
    start, end = key_time(first), key_time(last)
    return time_key(end + 2 * max(end - start, MIN_WINDOW))
