"""Follow-up's remediation verdicts as tests need them: ``RemediationVerified`` events with plausible evidence."""

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import (
    Comparison,
    Evidence,
    RemediationVerified,
    Severity,
    Verdict,
    VerificationMethod,
    VerificationPlan,
    followup_event_id,
)

JUDGED_AT = datetime(2026, 12, 20, 10, 0, tzinfo=UTC)

METRIC_CHECK: dict[str, Any] = {
    "method": "metric",
    "query": 'max_over_time(order_retry_rate{service="orders"}[7d])',
    "comparison": "<",
    "threshold": 5,
    "verifier": "victor",
}

OBSERVED = {Verdict.EFFECTIVE: 3.2, Verdict.NOT_EFFECTIVE: 9.5, Verdict.INCONCLUSIVE: None}


def remediation_verified(
    review_id: str,
    incident_key: str,
    item_id: str = "AI-1",
    verdict: Verdict = Verdict.EFFECTIVE,
    attempt: int = 1,
) -> RemediationVerified:
    """Attempt ``attempt`` of follow-up's judge on the metric check ``METRIC_CHECK``; same arguments, same event id."""
    timer = f"verify|{review_id}|{item_id}|{attempt}"
    judged_at = JUDGED_AT + timedelta(hours=attempt)
    return RemediationVerified(
        event_id=followup_event_id(timer),
        occurred_at=judged_at,
        review_id=review_id,
        timer_id=timer,
        incident_key=incident_key,
        title="Orders stuck in pending",
        severity=Severity.CRITICAL,
        action_item_id=item_id,
        verification=VerificationPlan.model_validate(METRIC_CHECK),
        verdict=verdict,
        evidence=Evidence(
            method=VerificationMethod.METRIC,
            judged_by="followup/prometheus",
            judged_at=judged_at,
            window_start=judged_at - timedelta(days=7),
            window_end=judged_at,
            expression=METRIC_CHECK["query"],
            comparison=Comparison.LT,
            threshold=5,
            baseline=12.0,
            observed=OBSERVED[verdict],
            detail="no data: Prometheus did not answer" if verdict is Verdict.INCONCLUSIVE else "compared over 7 days",
        ),
        attempt=attempt,
    )
