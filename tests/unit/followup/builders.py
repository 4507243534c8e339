"""Review events as the review service announces them, one story per review with its versions counted up."""

from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

from schemas import (
    ActionItemAdded,
    ActionItemCategory,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemUpdated,
    ReviewOpened,
    ReviewRecurred,
    ReviewStatus,
    ReviewStatusChanged,
    ReviewUpdated,
    Severity,
)

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class ReviewStory:
    """Builds the events of one review in order; each call is the next version."""

    def __init__(self, review_id: str = "r-1") -> None:
        self.review_id = review_id
        self.version = 0

    def _next(self) -> dict[str, object]:
        self.version += 1
        return {
            "event_id": uuid5(NAMESPACE_URL, f"{self.review_id}/{self.version}"),
            "review_id": self.review_id,
            "version": self.version,
        }

    def opened(
        self,
        *,
        at: datetime = T0,
        due_at: datetime | None = T0 + 7 * DAY,
        status: ReviewStatus = ReviewStatus.OPEN,
        severity: Severity = Severity.HIGH,
        owner: str | None = "alice",
        started_at: datetime | None = T0 - timedelta(hours=2),
    ) -> ReviewOpened:
        return ReviewOpened.model_validate(
            {
                **self._next(),
                "occurred_at": at,
                "incident_key": f"generic:{self.review_id}",
                "source": "generic",
                "title": "Checkout latency",
                "severity": severity,
                "team": "payments",
                "owner": owner,
                "status": status,
                "due_at": due_at,
                "incident_started_at": started_at,
                "incident_resolved_at": at - timedelta(hours=1),
            }
        )

    def updated(
        self, *, at: datetime, changed: tuple[str, ...], owner: str | None = None, due_at: datetime | None = None
    ) -> ReviewUpdated:
        return ReviewUpdated.model_validate(
            {**self._next(), "occurred_at": at, "changed": changed, "owner": owner, "due_at": due_at}
        )

    def status(self, *, at: datetime, from_status: ReviewStatus, to_status: ReviewStatus) -> ReviewStatusChanged:
        return ReviewStatusChanged.model_validate(
            {**self._next(), "occurred_at": at, "from_status": from_status, "to_status": to_status}
        )

    def item_added(
        self,
        *,
        at: datetime,
        item_id: str = "a-1",
        due_at: datetime | None = None,
        priority: ActionItemPriority = ActionItemPriority.HIGH,
        owner: str | None = "bob",
    ) -> ActionItemAdded:
        return ActionItemAdded.model_validate(
            {
                **self._next(),
                "occurred_at": at,
                "action_item_id": item_id,
                "title": "Alert on queue depth",
                "owner": owner,
                "due_at": due_at,
                "priority": priority,
                "category": ActionItemCategory.MONITORING_ALERTING,
                "status": ActionItemStatus.OPEN,
            }
        )

    def item_updated(
        self,
        *,
        at: datetime,
        item_id: str = "a-1",
        status: ActionItemStatus = ActionItemStatus.OPEN,
        due_at: datetime | None = None,
        priority: ActionItemPriority = ActionItemPriority.HIGH,
        owner: str | None = "bob",
        changed: tuple[str, ...] = ("status",),
    ) -> ActionItemUpdated:
        return ActionItemUpdated.model_validate(
            {
                **self._next(),
                "occurred_at": at,
                "action_item_id": item_id,
                "title": "Alert on queue depth",
                "owner": owner,
                "due_at": due_at,
                "priority": priority,
                "category": ActionItemCategory.MONITORING_ALERTING,
                "status": status,
                "changed": changed,
            }
        )

    def recurred(self, *, at: datetime, after_remediation: bool, same_version: bool = False) -> ReviewRecurred:
        """Review announces a recurrence with the version of the change that linked it (as with the opening)."""
        if same_version:
            self.version -= 1
        fields = self._next()
        fields["event_id"] = uuid5(NAMESPACE_URL, f"{self.review_id}/{self.version}/recurred")
        return ReviewRecurred.model_validate(
            {
                **fields,
                "occurred_at": at,
                "incident_key": f"generic:{self.review_id}-again",
                "earlier_review_id": "r-earlier",
                "earlier_incident_key": "generic:earlier",
                "matched_on": "fingerprint",
                "recurred_after_remediation": after_remediation,
            }
        )
