"""What to queue for one notice: each delivery with its moment, or why nothing goes."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.notify.domain.notices import Notice
from services.notify.domain.routing import ChannelName, Delivery, Routing, deliveries, person_of
from services.notify.domain.timing import Timing, timing


@dataclass(frozen=True)
class Planned:
    delivery: Delivery
    timing: Timing


@dataclass(frozen=True)
class Plan:
    planned: tuple[Planned, ...] = ()
    # Deliveries dropped because their channel is not configured here (e.g. no SMTP server): counted, not queued.
    not_configured: tuple[Delivery, ...] = ()
    stale: bool = False

    @property
    def nobody(self) -> bool:
        return not self.planned and not self.not_configured and not self.stale


def plan(
    routing: Routing,
    notice: Notice,
    *,
    now: datetime,
    published_at: datetime,
    max_age: timedelta,
    channels: frozenset[ChannelName],
) -> Plan:
    """The messages ``notice`` calls for at ``now``.

    An event published more than ``max_age`` ago is not delivered: a consumer reading a topic from its start (a new
    deployment, a reset group) must not mail everyone about last year's reminders.
    """
    if now - published_at > max_age:
        return Plan(stale=True)
    planned: list[Planned] = []
    skipped: list[Delivery] = []
    for delivery in deliveries(routing, notice):
        if delivery.channel not in channels:
            skipped.append(delivery)
            continue
        planned.append(Planned(delivery, timing(person_of(routing, delivery.recipient), notice.kind, now)))
    return Plan(tuple(planned), tuple(skipped))
