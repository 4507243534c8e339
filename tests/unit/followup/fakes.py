"""In-memory stand-ins for follow-up's MongoDB repositories, behaving as they do for the consumer's needs."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from schemas import AnyReviewEvent
from servicekit.dead_letters import DeadLetterMetrics, DeadLetters
from services.followup.domain.backlog import Backlog, backlog_from_counts, with_change
from services.followup.domain.projection import ReviewView
from services.followup.domain.timers import PlannedTimer

Document = dict[str, Any]
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
EMPTY = backlog_from_counts(reviews_open={}, reviews_overdue={}, action_items_open={}, action_items_overdue={})


@dataclass
class InMemoryReviewViews:
    """Like ``ReviewViewRepository``: a compare-and-set on ``version``, and the changes stored since the last count."""

    views: dict[str, ReviewView] = field(default_factory=dict)
    changes: list[tuple[ReviewView | None, ReviewView]] = field(default_factory=list)
    bulk_writes: int = 0

    async def get(self, review_id: str) -> ReviewView | None:
        return self.views.get(review_id)

    async def get_many(self, review_ids: Iterable[str]) -> dict[str, ReviewView | None]:
        return {review_id: self.views.get(review_id) for review_id in sorted(set(review_ids))}

    async def save(self, view: ReviewView, replacing: ReviewView | None) -> bool:
        stored = self.views.get(view.review_id)
        if (stored is None) != (replacing is None) or (stored and replacing and stored.version != replacing.version):
            return False
        self.views[view.review_id] = view
        self.changes.append((replacing, view))
        return True

    async def save_many(self, changes: Sequence[tuple[ReviewView | None, ReviewView]]) -> set[str]:
        self.bulk_writes += 1
        return {view.review_id for replacing, view in changes if not await self.save(view, replacing)}

    def take_changes(self) -> list[tuple[ReviewView | None, ReviewView]] | None:
        changes, self.changes = self.changes, []
        return changes

    async def backlog(self, now: datetime) -> Backlog:
        """A count: every stored view added to an empty backlog, by the count's own rules (``with_change``)."""
        self.changes = []
        backlog = EMPTY
        for view in self.views.values():
            backlog = with_change(backlog, None, view, now)
        return backlog


@dataclass
class InMemoryTimers:
    """Like ``TimerRepository`` for tracking: a review's unfired timers become exactly the planned ones."""

    timers: dict[str, Document] = field(default_factory=dict)
    bulk_writes: int = 0

    async def timers_of(self, review_ids: Iterable[str]) -> dict[str, dict[str, Document]]:
        found: dict[str, dict[str, Document]] = {review_id: {} for review_id in sorted(set(review_ids))}
        for timer_id, document in self.timers.items():
            if document["review_id"] in found:
                found[document["review_id"]][timer_id] = document
        return found

    async def reconcile(
        self, review_id: str, planned: tuple[PlannedTimer, ...], stored: dict[str, Document] | None = None
    ) -> dict[str, Document]:
        planned_ids = {timer.timer_id for timer in planned}
        for timer_id, document in list(self.timers.items()):
            if document["review_id"] == review_id and document["fired_at"] is None and timer_id not in planned_ids:
                del self.timers[timer_id]
        for timer in planned:
            current = self.timers.get(timer.timer_id)
            if current is None or current["fired_at"] is None:
                self.timers[timer.timer_id] = {
                    "_id": timer.timer_id,
                    "review_id": review_id,
                    "kind": timer.kind.value,
                    "due_at": timer.due_at,
                    "fired_at": None,
                }
        return (await self.timers_of([review_id]))[review_id]

    async def reconcile_many(
        self, plans: Mapping[str, tuple[tuple[PlannedTimer, ...], dict[str, Document]]]
    ) -> dict[str, dict[str, Document] | None]:
        self.bulk_writes += 1
        return {
            review_id: await self.reconcile(review_id, planned, stored)
            for review_id, (planned, stored) in plans.items()
        }

    def of_review(self, review_id: str) -> list[str]:
        return sorted(timer_id for timer_id, document in self.timers.items() if document["review_id"] == review_id)


class RecordingDeadLetters(DeadLetters):
    """Keeps what would go to the DLQ, with its reason."""

    def __init__(self) -> None:
        super().__init__(
            KafkaBroker(), "dlq", failed_by="followup", clock=lambda: T0, metrics=DeadLetterMetrics(CollectorRegistry())
        )
        self.sent: list[tuple[bytes, str]] = []

    async def send(self, record: ConsumerRecord[Any, Any], reason: str, attempts: int = 1) -> None:
        self.sent.append((record.value, reason))


def record_of(event: AnyReviewEvent, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = event.model_dump_json().encode()
    key = event.review_id.encode()
    return ConsumerRecord(
        topic="reviews.events",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=(),
    )
