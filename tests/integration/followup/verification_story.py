"""A review whose action items are done with verification plans, timed against the test Prometheus' history."""

from datetime import timedelta
from uuid import NAMESPACE_URL, uuid5

from schemas import ActionItemStatus, AnyReviewEvent, ReviewRecurred
from schemas.verification import Comparison, VerificationMethod, VerificationPlan
from tests.integration.followup.prometheus_history import History
from tests.unit.followup.builders import ReviewStory

HOUR = 3_600
# Observed over the hour after the change (no stabilisation): the window ends at minute 120 of the history.
LATENCY_FIXED = VerificationPlan(
    method=VerificationMethod.METRIC,
    query='max_over_time(checkout_latency_seconds{job="checkout"}[$window])',
    comparison=Comparison.LT,
    threshold=0.5,
    window_seconds=HOUR,
    stabilisation_seconds=0,
    verifier="carol",
)
QUEUE_NOT_FIXED = VerificationPlan(
    method=VerificationMethod.METRIC,
    query='max_over_time(queue_depth{job="worker"}[$window])',
    comparison=Comparison.LE,
    threshold=50,
    window_seconds=HOUR,
    stabilisation_seconds=0,
)
ALERT_FIRED = VerificationPlan(
    method=VerificationMethod.ALERT,
    alert_name="CheckoutSlow",
    alert_matchers={"service": "checkout"},
    window_seconds=HOUR,
    stabilisation_seconds=0,
)
ALERT_QUIET = VerificationPlan(
    method=VerificationMethod.ALERT,
    alert_name="CheckoutSlow",
    alert_matchers={"service": "payments"},
    window_seconds=HOUR,
    stabilisation_seconds=0,
)
NO_RECURRENCE = VerificationPlan(method=VerificationMethod.RECURRENCE, window_seconds=HOUR, stabilisation_seconds=0)


def done_with_plans(story: ReviewStory, history: History, plans: dict[str, VerificationPlan]) -> list[AnyReviewEvent]:
    """The review opened, each item added, then each done at ``history.changed_at`` with its plan."""
    events: list[AnyReviewEvent] = [story.opened(at=history.at(0), due_at=history.at(0) + timedelta(days=30))]
    events += [story.item_added(at=history.at(10), item_id=item_id) for item_id in plans]
    events += [
        story.item_updated(at=history.changed_at, item_id=item_id, status=ActionItemStatus.DONE).model_copy(
            update={"verification": plan}
        )
        for item_id, plan in plans.items()
    ]
    return events


def recurrence_of(earlier: ReviewStory, history: History, minutes: float) -> ReviewRecurred:
    """A new review, linked by review as a recurrence of ``earlier``'s incident, ``minutes`` into the history."""
    later = ReviewStory(f"{earlier.review_id}-again")
    event = later.recurred(at=history.at(minutes), after_remediation=True)
    return event.model_copy(
        update={"earlier_review_id": earlier.review_id, "event_id": uuid5(NAMESPACE_URL, f"{later.review_id}/again")}
    )
