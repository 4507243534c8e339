"""The compact time form ids are derived from: fixed width, UTC, whatever offset the vendor gave."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.ingest.sources._times import compact_utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 16, 10, 34, 56, tzinfo=UTC), "20240516T103456Z"),
        (datetime(2024, 5, 16, 10, 34, 56, 999_999, tzinfo=UTC), "20240516T103456Z"),
        (datetime(2024, 1, 1, 1, 2, 3, tzinfo=timezone(timedelta(hours=2))), "20231231T230203Z"),
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5, minutes=-30))), "20261201T052959Z"),
    ],
)
def test_compact_utc_is_the_instant_in_utc_to_the_second(value: datetime, expected: str) -> None:
    assert compact_utc(value) == expected
    assert compact_utc(value) == value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
