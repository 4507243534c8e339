"""When a message may go: at once, at the end of the recipient's quiet hours, or with their next digest.

All in the recipient's time zone, from a ``now`` the caller passes (an injected clock): quiet hours are wall-clock
times there, and a digest period is counted from local midnight (``PT4H``: 00:00, 04:00, 08:00...). Times returned
are UTC.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.notify.domain.notices import DIGESTIBLE
from services.notify.domain.routing import Person, QuietHours

HeldFor = Literal["quiet_hours", "digest"]


@dataclass(frozen=True)
class Timing:
    send_at: datetime
    held_for: HeldFor | None = None
    # Messages of one recipient and channel with the same group go out as one digest.
    digest_group: str | None = None


def in_quiet_hours(quiet: QuietHours, local: time) -> bool:
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_hours_end(person: Person, now: datetime) -> datetime | None:
    """When the quiet hours ``now`` falls in end (UTC), or ``None`` when ``now`` is not in them."""
    quiet = person.quiet_hours
    zone = person.zone
    local = now.astimezone(zone)
    if quiet is None or not in_quiet_hours(quiet, local.time().replace(tzinfo=None)):
        return None
    day = local.date()
    for _ in range(3):
        end = datetime.combine(day, quiet.end, tzinfo=zone).astimezone(UTC)
        if end > now:
            return end
        day += timedelta(days=1)
    raise AssertionError("quiet hours always end within two days")  # pragma: no cover


def digest_period_end(period: timedelta, zone: ZoneInfo, now: datetime) -> datetime:
    """The end (UTC) of the digest period ``now`` falls in, periods counted from local midnight."""
    local = now.astimezone(zone).replace(tzinfo=None)
    midnight = datetime.combine(local.date(), time(0))
    index = (local - midnight) // period
    end = (midnight + (index + 1) * period).replace(tzinfo=zone).astimezone(UTC)
    # Around a change of clocks the wall-clock end can come out at or before now: the next period then.
    return end if end > now else end + period


def timing(person: Person | None, kind: str, now: datetime) -> Timing:
    """When a message of ``kind`` to ``person`` (``None``: a team channel, never held) may be sent."""
    if person is None:
        return Timing(now)
    if person.digest is not None and kind in DIGESTIBLE:
        end = digest_period_end(person.digest, person.zone, now)
        send_at = quiet_hours_end(person, end) or end
        return Timing(send_at, "digest", end.isoformat())
    quiet_end = quiet_hours_end(person, now)
    if quiet_end is not None:
        return Timing(quiet_end, "quiet_hours")
    return Timing(now)


def is_quiet(person: Person | None, now: datetime) -> bool:
    return person is not None and quiet_hours_end(person, now) is not None
