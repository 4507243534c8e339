"""Quiet hours and digests, in the recipient's time zone, from an injected time."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain.planning import plan
from services.notify.domain.routing import Person
from services.notify.domain.timing import digest_period_end, quiet_hours_end, timing
from tests.unit.notify.builders import notice_of, reminder, routing

PARIS = ZoneInfo("Europe/Paris")


def paris(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def quiet_person(**extra: object) -> Person:
    return Person.model_validate(
        {"email": "p@example.org", "time_zone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:30"}}
        | extra
    )


@pytest.mark.parametrize(
    ("now", "ends"),
    [
        (paris(2026, 11, 30, 23, 15), paris(2026, 12, 1, 7, 30)),  # before midnight: the next morning
        (paris(2026, 12, 1, 3, 0), paris(2026, 12, 1, 7, 30)),  # after midnight: this morning
        (paris(2026, 12, 1, 7, 30), None),  # the end itself is no longer quiet
        (paris(2026, 12, 1, 21, 59), None),
    ],
)
def test_quiet_hours_that_span_midnight(now: datetime, ends: datetime | None) -> None:
    assert quiet_hours_end(quiet_person(), now) == ends


def test_quiet_hours_within_a_day() -> None:
    person = quiet_person(quiet_hours={"start": "12:00", "end": "14:00"})
    assert quiet_hours_end(person, paris(2026, 12, 1, 13, 0)) == paris(2026, 12, 1, 14, 0)
    assert quiet_hours_end(person, paris(2026, 12, 1, 11, 59)) is None


def test_quiet_hours_follow_the_clock_change() -> None:
    # Paris leaves summer time on 2026-10-25 at 03:00 (UTC+2 to UTC+1): 07:30 local is 06:30 UTC that morning.
    ends = quiet_hours_end(quiet_person(), paris(2026, 10, 24, 23, 0))
    assert ends == datetime(2026, 10, 25, 6, 30, tzinfo=UTC)


def test_a_message_in_quiet_hours_is_held_until_they_end() -> None:
    held = timing(quiet_person(), "Escalated", paris(2026, 11, 30, 23, 15))
    assert (held.send_at, held.held_for, held.digest_group) == (paris(2026, 12, 1, 7, 30), "quiet_hours", None)
    assert timing(quiet_person(), "Escalated", paris(2026, 12, 1, 10, 0)).held_for is None
    assert timing(None, "Escalated", paris(2026, 11, 30, 23, 15)).held_for is None  # a team channel is never held


def test_digest_periods_count_from_local_midnight() -> None:
    four_hours = timedelta(hours=4)
    assert digest_period_end(four_hours, PARIS, paris(2026, 12, 1, 9, 10)) == paris(2026, 12, 1, 12, 0)
    assert digest_period_end(four_hours, PARIS, paris(2026, 12, 1, 12, 0)) == paris(2026, 12, 1, 16, 0)
    assert digest_period_end(timedelta(days=1), PARIS, paris(2026, 12, 1, 23, 59)) == paris(2026, 12, 2, 0, 0)


def test_reminders_of_one_period_share_a_digest_group_and_news_is_not_digested() -> None:
    person = quiet_person(digest="PT4H", quiet_hours=None)
    first = timing(person, "ReminderDue", paris(2026, 12, 1, 8, 5))
    second = timing(person, "ActionItemOverdue", paris(2026, 12, 1, 11, 55))
    later = timing(person, "ReminderDue", paris(2026, 12, 1, 12, 0))
    assert first.held_for == "digest"
    assert first.send_at == paris(2026, 12, 1, 12, 0)
    assert first.digest_group == second.digest_group != later.digest_group
    assert timing(person, "ReviewPublished", paris(2026, 12, 1, 8, 5)).held_for is None


def test_a_digest_due_in_quiet_hours_waits_for_their_end() -> None:
    person = quiet_person(digest="PT4H")
    held = timing(person, "ReminderDue", paris(2026, 11, 30, 21, 0))  # the period ends at 00:00, in quiet hours
    assert held.held_for == "digest"
    assert held.send_at == paris(2026, 12, 1, 7, 30)


def test_old_events_are_not_delivered() -> None:
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    notice = notice_of(reminder("alice"))
    fresh = plan(routing(), notice, now=now, published_at=now, max_age=timedelta(days=7), channels=frozenset({"email"}))
    assert [p.delivery.channel for p in fresh.planned] == ["email"]
    assert [d.channel for d in fresh.not_configured] == ["chat"]
    old = plan(
        routing(),
        notice,
        now=now,
        published_at=now - timedelta(days=8),
        max_age=timedelta(days=7),
        channels=frozenset({"email", "chat"}),
    )
    assert old.stale
    assert old.planned == ()
