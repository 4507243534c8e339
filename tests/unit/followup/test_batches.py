"""How long Kafka waits for a batch of review events before it gives the partitions to another consumer."""

from services.followup.handlers import max_poll_interval_ms
from services.followup.settings import FollowupSettings


def test_the_poll_interval_outlasts_a_batch_of_events_that_all_fail() -> None:
    # Defaults: 100 records, 5 attempts, pauses of 0.5+1+1.5+2 s between them, 1 s allowed per attempt.
    assert max_poll_interval_ms(100, 5, 0.5) == 100 * (5.0 + 5 * 1.0) * 1000
    assert max_poll_interval_ms(1, 1, 0.0) == 300_000  # never below Kafka's default
    assert FollowupSettings().batch_max_records == 100
