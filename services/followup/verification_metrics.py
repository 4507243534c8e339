"""Follow-up's remediation verification metrics (on the service's registry, beside the other ``lessons_*`` ones).

Counters move as attempts fire (each marked fired by one replica) and as review's final verdicts are tracked; the
gauges are counted in MongoDB at most once per ``recount`` (at a verification sweep), and every replica reports the
same count: dashboards take ``max`` over replicas.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from schemas import RemediationVerified, Severity
from schemas.verification import Verdict, VerificationMethod
from services.followup.domain.projection import DROPPED_STATUSES, RemediationJudged
from services.followup.review_views import AWAITING_VERDICT, ReviewViewRepository
from services.followup.verification_timers import VerificationTimerRepository

FINAL_VERDICTS = (Verdict.EFFECTIVE, Verdict.NOT_EFFECTIVE)


@dataclass
class VerificationMetrics:
    evaluations: Counter
    verdicts: Counter
    unverified: Gauge
    retrying: Gauge
    inconclusive_age: Gauge
    recount: timedelta = timedelta(seconds=60)
    _counted_at: datetime | None = None
    _counting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(
        cls, registry: CollectorRegistry, *, recount: timedelta = timedelta(seconds=60)
    ) -> "VerificationMetrics":
        metrics = cls(
            recount=recount,
            evaluations=Counter(
                "lessons_remediation_evaluations_total",
                "Remediation verification attempts evaluated by follow-up, by method and verdict",
                ["method", "verdict"],
                registry=registry,
            ),
            verdicts=Counter(
                "lessons_remediation_verdicts_total",
                "Final verdicts recorded on remediations (effective, not_effective), by the review's severity",
                ["severity", "verdict"],
                registry=registry,
            ),
            unverified=Gauge(
                "lessons_remediations_unverified",
                "Action items done with a verification plan and no final verdict yet, by method (counted in MongoDB)",
                ["method"],
                registry=registry,
            ),
            retrying=Gauge(
                "lessons_remediation_verifications_retrying",
                "Verifications whose last attempt was inconclusive, waiting for a retry (counted in MongoDB)",
                registry=registry,
            ),
            inconclusive_age=Gauge(
                "lessons_remediation_verification_inconclusive_age_seconds",
                "How long the oldest verification still retrying has gone unanswered since it was first due (0: none)",
                registry=registry,
            ),
        )
        for method in VerificationMethod:
            metrics.unverified.labels(method.value)
            if method is not VerificationMethod.MANUAL:
                for verdict in Verdict:
                    metrics.evaluations.labels(method.value, verdict.value)
        for severity in Severity:
            for verdict in FINAL_VERDICTS:
                metrics.verdicts.labels(severity.value, verdict.value)
        return metrics

    def evaluated(self, event: RemediationVerified) -> None:
        self.evaluations.labels(event.verification.method.value, event.verdict.value).inc()

    def judged(self, fact: RemediationJudged) -> None:
        self.verdicts.labels(fact.severity.value, fact.verdict.value).inc()

    async def refresh(self, timers: VerificationTimerRepository, views: ReviewViewRepository, now: datetime) -> None:
        """Count the gauges in MongoDB if the last count is ``recount`` old (or there was none)."""
        async with self._counting:
            if self._counted_at is not None and self._counted_at <= now < self._counted_at + self.recount:
                return
            unverified = await _count_unverified(views.reviews)
            backlog = await timers.retry_backlog()
            for method in VerificationMethod:
                self.unverified.labels(method.value).set(unverified.get(method.value, 0))
            self.retrying.set(backlog.retrying)
            oldest = backlog.oldest_first_due_at
            self.inconclusive_age.set(0 if oldest is None else max((now - oldest).total_seconds(), 0.0))
            self._counted_at = now


def unverified_pipeline() -> list[dict[str, Any]]:
    """Done items with a verification plan and no verdict, by method.

    The first stage alone uses the ``awaiting_verdict`` index (one predicate, so that every server plans it on the
    index): it reads the views awaiting a verdict and those stored before the flag (null), never the whole history.
    The stages after it count exactly, whatever the flag says.
    """
    return [
        {"$match": {AWAITING_VERDICT: {"$in": [True, None]}}},
        {"$match": {"status": {"$nin": [status.value for status in DROPPED_STATUSES]}}},
        {"$unwind": "$action_items"},
        {
            "$match": {
                "action_items.status": "done",
                "action_items.verification": {"$type": "object"},
                "action_items.verdict": None,
            }
        },
        {"$group": {"_id": "$action_items.verification.method", "count": {"$sum": 1}}},
    ]


async def _count_unverified(reviews: AsyncCollection[dict[str, Any]]) -> dict[str, int]:
    cursor = await reviews.aggregate(unverified_pipeline())
    return {row["_id"]: row["count"] for row in await cursor.to_list()}
