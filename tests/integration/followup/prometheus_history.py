"""The history the follow-up tests give their real Prometheus: a remediation that worked, one that did not, an alert.

Times are relative to a start ``T`` a few hours before the wall clock (Prometheus keeps what is recent), rounded to
the minute so that the moments the tests ask about fall on samples.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.support.prometheus import Series, every

MINUTE = timedelta(minutes=1)
STEP = timedelta(seconds=15)


@dataclass(frozen=True)
class History:
    start: datetime

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)

    @property
    def changed_at(self) -> datetime:
        """When the remediation was done: latency drops from 0.9 s to 0.3 s here, the queue stays at 100."""
        return self.at(60)

    @property
    def alert_fired(self) -> tuple[datetime, datetime]:
        """``CheckoutSlow`` for ``service="checkout"`` fires from minute 100 to minute 110."""
        return self.at(100), self.at(110)

    @property
    def end(self) -> datetime:
        return self.at(150)

    def series(self) -> list[Series]:
        before, after = (
            every(self.start, self.changed_at - STEP, STEP, 0.9),
            every(self.changed_at, self.end, STEP, 0.3),
        )
        alert_from, alert_to = self.alert_fired
        return [
            Series("up", {"job": "backfill"}, tuple(every(self.start, self.end, STEP, 1.0))),
            Series("checkout_latency_seconds", {"job": "checkout"}, tuple(before + after)),
            Series("queue_depth", {"job": "worker"}, tuple(every(self.start, self.end, STEP, 100.0))),
            Series(
                "ALERTS",
                {"alertname": "CheckoutSlow", "alertstate": "firing", "service": "checkout"},
                tuple(every(alert_from, alert_to, STEP, 1.0)),
            ),
            *(
                Series("wide", {"shard": str(number)}, tuple(every(self.start, self.end, STEP, float(number))))
                for number in range(60)
            ),
        ]


def recent_history(now: datetime | None = None) -> History:
    now = now or datetime.now(UTC)
    start = (now - timedelta(hours=3)).replace(second=0, microsecond=0)
    return History(start)
