"""The outbox order key sorts exactly as (created_at to the millisecond, version, seq, event id) does."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.review.domain.outbox_order import key_time, order_key, time_key, window_end

# Close moments, so that many entries share a millisecond or a second and the later parts must decide.
moments = st.datetimes(
    min_value=datetime(2026, 11, 30, 12, 0, 0),  # noqa: DTZ001 - hypothesis wants naive bounds; timezones= below
    max_value=datetime(2026, 11, 30, 12, 0, 2),  # noqa: DTZ001
    timezones=st.just(UTC),
)
entries = st.tuples(
    moments,
    st.integers(min_value=1, max_value=120),  # versions past 9 and 99: a digit more must not sort first
    st.integers(min_value=0, max_value=25),  # seq past 9 likewise
    st.uuids().map(str),
)


def stored(moment: datetime) -> datetime:
    """The moment as a BSON date holds it (milliseconds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@given(st.lists(entries, min_size=2, max_size=40))
def test_sorting_by_the_key_is_sorting_by_the_tuple(generated: list[tuple[datetime, int, int, str]]) -> None:
    by_tuple = sorted(generated, key=lambda e: (stored(e[0]), e[1], e[2], e[3]))
    by_key = sorted(generated, key=lambda e: order_key(*e))
    assert [order_key(*e) for e in by_key] == [order_key(*e) for e in by_tuple]


def test_versions_and_seqs_of_more_digits_sort_after_fewer() -> None:
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    event_id = str(uuid.uuid4())
    assert order_key(moment, 9, 0, event_id) < order_key(moment, 10, 0, event_id)
    assert order_key(moment, 1, 9, event_id) < order_key(moment, 1, 10, event_id)
    assert order_key(moment, 100, 0, event_id) < order_key(moment + timedelta(milliseconds=1), 1, 0, event_id)


def test_the_key_is_the_same_for_the_moment_as_written_and_as_read_back() -> None:
    written = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    read_back_naive = datetime(2026, 11, 30, 12, 0, 0, 123000)  # noqa: DTZ001 - what a client not tz-aware returns
    assert order_key(written, 3, 1, "e") == order_key(read_back_naive, 3, 1, "e")
    assert key_time(order_key(written, 3, 1, "e")) == stored(written)


@pytest.mark.parametrize(("version", "seq"), [(-1, 0), (10**10, 0), (1, -1), (1, 10**6)])
def test_a_version_or_seq_that_does_not_fit_is_refused(version: int, seq: int) -> None:
    with pytest.raises(ValueError, match="must be from 0"):
        order_key(datetime(2026, 11, 30, tzinfo=UTC), version, seq, "e")


@given(moments, moments, moments, st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=9))
def test_a_window_end_splits_keys_by_time_alone(
    first: datetime, last: datetime, other: datetime, version: int, seq: int
) -> None:
    first, last = min(first, last), max(first, last)
    end = window_end(order_key(first, 1, 0, "a"), order_key(last, 1, 0, "b"))
    assert key_time(end) > stored(last)
    assert (order_key(other, version, seq, "c") < end) == (stored(other) < key_time(end))
    assert end == time_key(key_time(end))
