"""Follow-up's ``lessons_*`` metrics: base units, low-cardinality labels only, never an incident id or a person.

Counters and histograms move as events are tracked and timers fire (each event is tracked by one replica, each
timer marked fired by one, so summing over replicas is right).

The backlog gauges are counted in MongoDB at start (so a restarted replica shows the right values at once) and again
at most once per ``backlog_recount`` (on the first refresh after it, in practice a timer sweep: time alone makes
reviews overdue). Counting reads every open review, so in between a refresh only moves the gauges by the views this
replica stored since (``ReviewViewRepository.take_changes``), judging "overdue" at the time of the count: a batch of
events costs the same however much is stored. Each replica thus shows the global backlog as of its last count plus
its own changes since; with several replicas, dashboards take ``max`` over them and are at most one recount interval
behind another replica's changes.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import ActionItemPriority, ActionItemStatus, ReviewStatus, Severity
from servicekit.dead_letters import DeadLetterMetrics
from services.followup.domain.backlog import Backlog, with_change
from services.followup.domain.projection import (
    ActionItemClosed,
    ActionItemTracked,
    Fact,
    RemediationJudged,
    ReviewCompleted,
    ReviewTracked,
)
from services.followup.ports import BacklogCounter, ClaimedTimer
from services.followup.verification_metrics import VerificationMetrics

HOUR = 3_600.0
DAY = 86_400.0
# Incidents last minutes to days; reviews and action items take days to months.
INCIDENT_DURATION_BUCKETS = (60.0, 300.0, 900.0, 1_800.0, HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, DAY, 3 * DAY)
TIME_TO_PUBLISH_BUCKETS = (DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY, 10 * DAY, 14 * DAY, 21 * DAY, 30 * DAY, 60 * DAY)
TIME_TO_CLOSE_BUCKETS = (DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 60 * DAY, 90 * DAY, 180 * DAY, 365 * DAY)
# How often the backlog is counted in MongoDB again; "overdue" can lag time by this much, never by more.
BACKLOG_RECOUNT = timedelta(seconds=60)


@dataclass
class _ShownBacklog:
    """The backlog the gauges show, and when it was last counted in MongoDB (None: not yet)."""

    backlog: Backlog | None = None
    counted_at: datetime | None = None

    def stale(self, now: datetime, every: timedelta) -> bool:
        # A clock that went back (a test's, or a corrected one) counts again too.
        return self.counted_at is None or not self.counted_at <= now < self.counted_at + every


@dataclass(frozen=True)
class FollowupMetrics:
    registry: CollectorRegistry
    dead_letters: DeadLetterMetrics
    reviews_opened: Counter
    reviews_open: Gauge
    reviews_overdue: Gauge
    reviews_completed: Counter
    time_to_publish: Histogram
    incident_duration: Histogram
    action_items_added: Counter
    action_items_closed: Counter
    action_items_open: Gauge
    action_items_overdue: Gauge
    action_item_time_to_close: Histogram
    escalations: Counter
    followup_events: Counter
    timers_expired: Counter
    last_sweep: Gauge
    review_events: Counter
    verifications: VerificationMetrics
    backlog_recount: timedelta = BACKLOG_RECOUNT
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _shown: _ShownBacklog = field(default_factory=_ShownBacklog)

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, *, backlog_recount: timedelta = BACKLOG_RECOUNT
    ) -> "FollowupMetrics":
        registry = registry or CollectorRegistry()
        metrics = cls(
            backlog_recount=backlog_recount,
            registry=registry,
            dead_letters=DeadLetterMetrics(registry),
            reviews_opened=Counter(
                "lessons_reviews_opened_total",
                "Lessons-learned reviews opened (first sight of each review needing one), by severity",
                ["severity"],
                registry=registry,
            ),
            reviews_open=Gauge(
                "lessons_reviews_open",
                "Reviews not yet closed, by status and severity (counted in MongoDB)",
                ["status", "severity"],
                registry=registry,
            ),
            reviews_overdue=Gauge(
                "lessons_reviews_overdue",
                "Reviews past their due date and not yet published, by severity (counted in MongoDB)",
                ["severity"],
                registry=registry,
            ),
            reviews_completed=Counter(
                "lessons_reviews_completed_total",
                "Reviews completed (published, or closed unpublished), by severity and outcome (on_time, late)",
                ["severity", "outcome"],
                registry=registry,
            ),
            time_to_publish=Histogram(
                "lessons_review_time_to_publish_seconds",
                "Time from the incident's resolution to its review being published, by severity",
                ["severity"],
                buckets=TIME_TO_PUBLISH_BUCKETS,
                registry=registry,
            ),
            incident_duration=Histogram(
                "lessons_incident_duration_seconds",
                "Incident duration, start to resolution, of each reviewed incident, by severity (for MTTR)",
                ["severity"],
                buckets=INCIDENT_DURATION_BUCKETS,
                registry=registry,
            ),
            action_items_added=Counter(
                "lessons_action_items_added_total",
                "Action items added to reviews, by priority",
                ["priority"],
                registry=registry,
            ),
            action_items_closed=Counter(
                "lessons_action_items_closed_total",
                "Action items finished, by priority and status (done, wont_do)",
                ["priority", "status"],
                registry=registry,
            ),
            action_items_open=Gauge(
                "lessons_action_items_open",
                "Action items not yet finished on open reviews, by priority (counted in MongoDB)",
                ["priority"],
                registry=registry,
            ),
            action_items_overdue=Gauge(
                "lessons_action_items_overdue",
                "Open action items past their due date, by priority (counted in MongoDB)",
                ["priority"],
                registry=registry,
            ),
            action_item_time_to_close=Histogram(
                "lessons_action_item_time_to_close_seconds",
                "Time from an action item being added to it being finished, by priority",
                ["priority"],
                buckets=TIME_TO_CLOSE_BUCKETS,
                registry=registry,
            ),
            escalations=Counter(
                "lessons_escalations_total",
                "Escalations fired, by level (1, 2...) and subject (review, action_item)",
                ["level", "subject"],
                registry=registry,
            ),
            followup_events=Counter(
                "lessons_followup_events_published_total",
                "Follow-up events published to followups.events (timers fired), by type",
                ["type"],
                registry=registry,
            ),
            timers_expired=Counter(
                "lessons_followup_timers_expired_total",
                "Timers dropped unsent because their moment passed before they fired (e.g. after downtime), by kind",
                ["kind"],
                registry=registry,
            ),
            last_sweep=Gauge(
                "lessons_followup_last_sweep_timestamp_seconds",
                "Unix time of this replica's last successful timer sweep",
                registry=registry,
            ),
            review_events=Counter(
                "lessons_review_events_total",
                "Events read from reviews.events, by type and outcome (tracked, duplicate, stale, ignored, unchanged)",
                ["type", "outcome"],
                registry=registry,
            ),
            verifications=VerificationMetrics.create(registry, recount=backlog_recount),
        )
        metrics._declare_series()
        return metrics

    def _declare_series(self) -> None:
        # Series that exist from the start read as 0 rather than "no data", and rate() sees their first increase.
        for severity in Severity:
            self.reviews_opened.labels(severity.value)
            for outcome in ("on_time", "late"):
                self.reviews_completed.labels(severity.value, outcome)
        for priority in ActionItemPriority:
            self.action_items_added.labels(priority.value)
            for status in (ActionItemStatus.DONE, ActionItemStatus.WONT_DO):
                self.action_items_closed.labels(priority.value, status.value)

    def record(self, fact: Fact) -> None:
        """Count what tracking an event revealed."""
        if isinstance(fact, ReviewTracked):
            if fact.status is not ReviewStatus.NOT_REQUIRED:
                self.reviews_opened.labels(fact.severity.value).inc()
            if fact.incident_duration_seconds is not None:
                self.incident_duration.labels(fact.severity.value).observe(fact.incident_duration_seconds)
        elif isinstance(fact, ReviewCompleted):
            self.reviews_completed.labels(fact.severity.value, "on_time" if fact.on_time else "late").inc()
            self.time_to_publish.labels(fact.severity.value).observe(max(fact.seconds_since_resolved, 0.0))
        elif isinstance(fact, ActionItemTracked):
            self.action_items_added.labels(fact.priority.value).inc()
        elif isinstance(fact, ActionItemClosed):
            self.action_items_closed.labels(fact.priority.value, fact.status.value).inc()
            self.action_item_time_to_close.labels(fact.priority.value).observe(max(fact.seconds_open, 0.0))
        elif isinstance(fact, RemediationJudged):
            self.verifications.judged(fact)

    def record_fired(self, timer: ClaimedTimer) -> None:
        self.followup_events.labels(timer.event_type).inc()
        if timer.kind == "escalation":
            self.escalations.labels(str(timer.level), timer.subject).inc()

    def show_backlog(self, backlog: Backlog) -> None:
        for (status, severity), count in backlog.reviews_open.items():
            self.reviews_open.labels(status.value, severity.value).set(count)
        for severity, count in backlog.reviews_overdue.items():
            self.reviews_overdue.labels(severity.value).set(count)
        for priority, count in backlog.action_items_open.items():
            self.action_items_open.labels(priority.value).set(count)
        for priority, count in backlog.action_items_overdue.items():
            self.action_items_overdue.labels(priority.value).set(count)

    async def refresh_backlog(self, views: BacklogCounter, now: datetime) -> None:
        """Count the backlog in MongoDB if it was last counted ``backlog_recount`` ago (or never); else follow changes.

        What start-up and timer sweeps call. One refresh at a time: a slower, older count must not overwrite a newer
        one, nor changes be applied twice.
        """
        async with self._refreshing:
            if self._shown.stale(now, self.backlog_recount):
                await self._recount(views, now)
            else:
                await self._follow_changes(views, now)

    async def show_changes(self, views: BacklogCounter, now: datetime) -> None:
        """Move the gauges by the views stored since the last refresh: no query, unless nothing was counted yet."""
        async with self._refreshing:
            await self._follow_changes(views, now)

    async def _follow_changes(self, views: BacklogCounter, now: datetime) -> None:
        shown = self._shown
        changes = views.take_changes()
        if shown.backlog is None or shown.counted_at is None or changes is None:
            await self._recount(views, now)  # nothing to move yet, or more changes than were kept
            return
        backlog = shown.backlog
        for before, after in changes:
            backlog = with_change(backlog, before, after, shown.counted_at)
        shown.backlog = backlog
        self.show_backlog(backlog)

    async def _recount(self, views: BacklogCounter, now: datetime) -> None:
        backlog = await views.backlog(now)
        self._shown.backlog, self._shown.counted_at = backlog, now
        self.show_backlog(backlog)
