"""Remediation verification: when to evaluate an action item's verification plan, what to ask, and the verdict.

Pure: the view and the policy say which evaluations should be pending (``plan_verifications``), the request says
which PromQL to ask at which time (``questions``), and ``judge`` turns the answers into a verdict with its evidence.

The timeline of a done item: ``done_at`` --stabilisation--> ``window_start`` --window--> ``window_end``. The first
attempt is due a short ``evaluation_delay`` after ``window_end`` (so the last samples are in) and always asks about
``window_end`` and ``done_at`` (Prometheus' ``time=``), never about "now": a later attempt, or a replica repeating one,
asks the same questions and gets the same answer unless the data itself changed.

- ``metric``: the expression at ``window_end`` (observed) compared with the threshold; at ``done_at`` (baseline, as
  evidence). ``$window`` in the expression stands for the window's length, e.g. ``max_over_time(x[$window])``.
- ``alert``: ``max_over_time(ALERTS{alertname=..., alertstate="firing", <matchers>}[window])`` at ``window_end`` must
  select nothing; Prometheus must hold samples of ``up`` over the window, else "no alert" proves nothing. With an
  Alertmanager configured, it is also asked which matching alerts are unresolved at the attempt: one firing since
  before ``window_end`` fired during the window (it may come from a source Prometheus' ``ALERTS`` does not hold). It
  only knows the present, so it can prove that the alert fired, never that it did not: that stays Prometheus' answer,
  and an Alertmanager that does not answer makes an otherwise ``effective`` verdict ``inconclusive``.
- ``recurrence``: no review linked as a recurrence of this one (``ReviewRecurred``) during the window; a verdict
  against it names the recurring reviews, so the auditor can open them.
- ``manual``: not evaluated here: the verifier records the verdict (and ``EffectivenessCheckDue`` reminds them).

An unanswered question makes the verdict ``inconclusive`` with the reason; the next attempt comes after a capped
exponential backoff, with its own timer id (so its own event id). Nothing but an answer makes a verdict ``effective``.
"""

import hashlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas import (
    ActionItemPriority,
    ActionItemStatus,
    RemediationVerified,
    Severity,
    followup_event_id,
)
from schemas.verification import (
    MAX_QUERY_CHARS,
    Comparison,
    Evidence,
    Verdict,
    VerificationMethod,
    VerificationPlan,
)
from services.followup.domain.answers import AlertsAnswer, Answer, Firing, NoAnswer, Problem, Values
from services.followup.domain.projection import DROPPED_STATUSES, ActionItemView, ReviewView

JUDGED_BY_PROMETHEUS = "followup/prometheus"
JUDGED_BY_RECURRENCE = "followup/recurrence"
EVALUATED = frozenset({VerificationMethod.METRIC, VerificationMethod.ALERT, VerificationMethod.RECURRENCE})
WINDOW_PLACEHOLDER = "$window"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"alertname", "alertstate"})
MAX_DETAIL_CHARS = 2_000
MAX_EXPRESSION_CHARS = MAX_QUERY_CHARS + 200
MAX_NAMED_RECURRENCES = 5  # the detail names this many recurring reviews, then counts the rest

COMPARE: Mapping[Comparison, Callable[[float, float], bool]] = {
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.EQ: operator.eq,
}


@dataclass(frozen=True)
class Timing:
    """How long a change settles before it is observed, and how long it is observed."""

    stabilisation: timedelta
    window: timedelta


def _default_timings() -> dict[ActionItemPriority, Timing]:
    return {
        ActionItemPriority.CRITICAL: Timing(timedelta(days=1), timedelta(days=7)),
        ActionItemPriority.HIGH: Timing(timedelta(days=1), timedelta(days=14)),
        ActionItemPriority.MEDIUM: Timing(timedelta(days=2), timedelta(days=30)),
        ActionItemPriority.LOW: Timing(timedelta(days=2), timedelta(days=30)),
    }


@dataclass(frozen=True)
class VerificationPolicy:
    timings: Mapping[ActionItemPriority, Timing] = field(default_factory=_default_timings)
    # After the window's end, before the first attempt: the window's last samples are scraped and ingested.
    evaluation_delay: timedelta = timedelta(minutes=2)
    retry_first: timedelta = timedelta(minutes=5)
    retry_max: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        if set(self.timings) != set(ActionItemPriority):
            raise ValueError("verification timings need an entry for every priority")
        for timing in self.timings.values():
            if timing.window <= timedelta(0) or timing.stabilisation < timedelta(0):
                raise ValueError("a verification window must be positive and its stabilisation not negative")
        if self.evaluation_delay < timedelta(0):
            raise ValueError("the evaluation delay must not be negative")
        if not timedelta(0) < self.retry_first <= self.retry_max:
            raise ValueError("retries need a positive first delay no longer than the longest one")

    def retry_delay(self, attempt: int) -> timedelta:
        """How long after attempt ``attempt`` answered ``inconclusive`` the next one is due: doubling, capped."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # Past 2**30 times the first delay any sane cap is reached: stop doubling before the numbers get silly.
        doubled: timedelta = self.retry_first * (2 ** min(attempt - 1, 30))
        return min(doubled, self.retry_max)

    def timing(self, plan: VerificationPlan, priority: ActionItemPriority) -> Timing:
        default = self.timings[priority]
        return Timing(
            stabilisation=default.stabilisation
            if plan.stabilisation_seconds is None
            else timedelta(seconds=plan.stabilisation_seconds),
            window=default.window if plan.window_seconds is None else timedelta(seconds=plan.window_seconds),
        )


@dataclass(frozen=True)
class VerificationRequest:
    """Everything one evaluation needs, stored with its timers so that firing reads nothing else."""

    series: str  # names this evaluation of this plan for this completion; attempts are numbered within it
    review_id: str
    incident_key: str
    title: str
    severity: Severity
    team: str | None
    owner: str | None  # who is told: the verifier, else the item's owner
    action_item_id: str
    action_item_title: str
    priority: ActionItemPriority
    plan: VerificationPlan
    done_at: datetime
    window_start: datetime
    window_end: datetime

    @property
    def window(self) -> timedelta:
        return self.window_end - self.window_start


@dataclass(frozen=True)
class PlannedVerification:
    """The first attempt of an evaluation that should be pending; later attempts are added as earlier ones fail."""

    request: VerificationRequest
    due_at: datetime

    @property
    def timer_id(self) -> str:
        return attempt_timer_id(self.request.series, 1)


def plan_verifications(view: ReviewView, policy: VerificationPolicy) -> tuple[PlannedVerification, ...]:
    """One evaluation per action item that is done, has a measurable plan and no verdict recorded since."""
    if view.status in DROPPED_STATUSES:
        return ()
    planned = []
    for item in view.action_items:
        plan = item.verification
        done_at = item.closed_at
        if plan is None or plan.method not in EVALUATED or item.verdict is not None:
            continue
        if item.status is not ActionItemStatus.DONE or done_at is None:
            continue
        try:
            timing = policy.timing(plan, item.priority)
            window_start = done_at + timing.stabilisation
            window_end = window_start + timing.window
            due_at = window_end + policy.evaluation_delay
        except OverflowError:
            continue  # a window that ends after the year 9999 never comes due: nothing to plan
        request = VerificationRequest(
            series=_series(view.review_id, item, plan, done_at, window_end),
            review_id=view.review_id,
            incident_key=view.incident_key,
            title=view.title,
            severity=view.severity,
            team=view.team,
            owner=plan.verifier or item.owner,
            action_item_id=item.action_item_id,
            action_item_title=item.title,
            priority=item.priority,
            plan=plan,
            done_at=done_at,
            window_start=window_start,
            window_end=window_end,
        )
        planned.append(PlannedVerification(request, due_at))
    return tuple(sorted(planned, key=lambda one: (one.due_at, one.timer_id)))


def _series(review_id: str, item: ActionItemView, plan: VerificationPlan, done_at: datetime, end: datetime) -> str:
    # The plan and the completion are part of the name: a changed plan, or an item reopened and done again, is a new
    # evaluation (the pending one is cancelled), while the same facts always name the same one.
    digest = hashlib.sha256(f"{plan.model_dump_json()}|{done_at.isoformat()}".encode()).hexdigest()[:12]
    return f"{review_id}:verification:item.{item.action_item_id}.{digest}@{_compact(end)}"


def attempt_timer_id(series: str, attempt: int) -> str:
    """``<review>:verification:item.<id>.<digest>@<window end>#<attempt>``: one timer, so one event id, per attempt."""
    return f"{series}#{attempt}"


# What to ask Prometheus.


@dataclass(frozen=True)
class Question:
    expression: str
    at: datetime


@dataclass(frozen=True)
class Questions:
    """The observed value (or alert samples), and the baseline or coverage check beside it; None: nothing to ask."""

    observed: Question | None = None
    baseline: Question | None = None
    coverage: Question | None = None
    invalid: str | None = None  # the plan cannot be turned into a query (e.g. a malformed matcher label)
    # alert: the label matchers (equality) to ask Alertmanager about, when one is configured.
    alert_matchers: tuple[tuple[str, str], ...] | None = None


def questions(request: VerificationRequest) -> Questions:
    plan = request.plan
    seconds = f"{int(request.window.total_seconds())}s"
    if plan.method is VerificationMethod.METRIC and plan.query is not None:
        expression = plan.query.replace(WINDOW_PLACEHOLDER, seconds)
        return Questions(
            observed=Question(expression, request.window_end), baseline=Question(expression, request.done_at)
        )
    if plan.method is VerificationMethod.ALERT and plan.alert_name is not None:
        bad = sorted(name for name in plan.alert_matchers if not LABEL_NAME.match(name) or name in RESERVED_LABELS)
        if bad:
            return Questions(invalid=f"invalid alert matcher label(s): {', '.join(bad)}")
        matchers = [("alertname", plan.alert_name), ("alertstate", "firing"), *sorted(plan.alert_matchers.items())]
        selector = ",".join(f'{name}="{_promql_string(value)}"' for name, value in matchers)
        expression = f"max_over_time(ALERTS{{{selector}}}[{seconds}])"
        return Questions(
            observed=Question(expression, request.window_end),
            baseline=Question(expression, request.done_at),  # the same length of time before the change
            coverage=Question(f"count(count_over_time(up[{seconds}]))", request.window_end),
            alert_matchers=(("alertname", plan.alert_name), *sorted(plan.alert_matchers.items())),
        )
    return Questions()


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# The verdict.


@dataclass(frozen=True)
class Answers:
    observed: Answer | None = None
    baseline: Answer | None = None
    coverage: Answer | None = None
    firing_now: AlertsAnswer | None = None  # Alertmanager's; None: none is configured, so it was not asked


@dataclass(frozen=True)
class LinkedRecurrence:
    """A later review that review linked as a recurrence of the verified one, and when it did."""

    review_id: str
    incident_key: str
    at: datetime


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    evidence: Evidence


def judge(
    request: VerificationRequest,
    asked: Questions,
    answers: Answers,
    recurrences: tuple[LinkedRecurrence, ...],
    judged_at: datetime,
) -> Judgement:
    """The verdict on one attempt. ``recurrences``: the reviews linked as recurrences of this one (any time)."""
    plan = request.plan
    if plan.method is VerificationMethod.RECURRENCE:
        return _recurrence(request, recurrences, judged_at)
    evidence = {
        "method": plan.method,
        "judged_by": JUDGED_BY_PROMETHEUS,
        "judged_at": judged_at,
        "window_start": request.window_start,
        "window_end": request.window_end,
        "expression": _cut(asked.observed.expression, MAX_EXPRESSION_CHARS) if asked.observed else None,
        "comparison": plan.comparison,
        "threshold": plan.threshold,
    }
    if asked.invalid is not None or asked.observed is None:
        reason = asked.invalid or "nothing to evaluate"
        return _judgement(Verdict.INCONCLUSIVE, evidence, f"{Problem.QUERY_ERROR}: {reason}")
    if plan.method is VerificationMethod.ALERT:
        return _alert(evidence, answers, request.window_end)
    return _metric(plan, evidence, answers)


def _metric(plan: VerificationPlan, evidence: dict[str, object], answers: Answers) -> Judgement:
    observed, problem = _single_value(answers.observed, "at the window's end")
    baseline, baseline_problem = _single_value(answers.baseline, "when the item was done")
    evidence["baseline"] = baseline
    if observed is None:
        return _judgement(Verdict.INCONCLUSIVE, evidence, problem)
    evidence["observed"] = observed
    if plan.comparison is None or plan.threshold is None:  # pragma: no cover - the plan's validator forbids it
        return _judgement(Verdict.INCONCLUSIVE, evidence, "query_error: no comparison or threshold")
    holds = COMPARE[plan.comparison](observed, plan.threshold)
    verdict = Verdict.EFFECTIVE if holds else Verdict.NOT_EFFECTIVE
    detail = f"{observed:g} {plan.comparison.value} {plan.threshold:g} {'holds' if holds else 'does not hold'}"
    detail += f" (baseline {baseline:g})" if baseline is not None else f" (no baseline: {baseline_problem})"
    return _judgement(verdict, evidence, detail)


def _alert(evidence: dict[str, object], answers: Answers, window_end: datetime) -> Judgement:
    fired = answers.observed
    before = answers.baseline
    evidence["baseline"] = float(len(before.values)) if isinstance(before, Values) else None
    firing_now = answers.firing_now
    # Unresolved since before the window's end: it fired during the window (and still does).
    since = (
        sorted(alert.starts_at for alert in firing_now.alerts if alert.starts_at <= window_end)
        if isinstance(firing_now, Firing)
        else []
    )
    alertmanager = f"Alertmanager reports {len(since)} firing since {since[0].isoformat()}" if since else ""
    if isinstance(fired, Values) and fired.values:
        evidence["observed"] = float(len(fired.values))
        detail = f"the alert fired during the window ({len(fired.values)} series)"
        return _judgement(Verdict.NOT_EFFECTIVE, evidence, f"{detail}; {alertmanager}" if since else detail)
    if since:
        evidence["observed"] = float(len(since))
        detail = f"the alert fired during the window: {alertmanager}, before the window's end"
        if not isinstance(fired, Values):
            detail += f" (Prometheus: {_unanswered(fired)})"
        return _judgement(Verdict.NOT_EFFECTIVE, evidence, detail)
    if not isinstance(fired, Values):
        return _judgement(Verdict.INCONCLUSIVE, evidence, _unanswered(fired))
    coverage = answers.coverage
    if not isinstance(coverage, Values) or not coverage.values:
        why = (
            _unanswered(coverage)
            if not isinstance(coverage, Values)
            else f"{Problem.NO_DATA}: Prometheus holds no samples of up during the window (down, or not kept)"
        )
        return _judgement(Verdict.INCONCLUSIVE, evidence, why)
    if isinstance(firing_now, NoAnswer):
        why = f"{firing_now.problem}: Alertmanager: {firing_now.detail} (Prometheus saw no alert during the window)"
        return _judgement(Verdict.INCONCLUSIVE, evidence, why)
    evidence["observed"] = 0.0
    detail = "the alert did not fire during the window"
    if firing_now is not None:
        detail += " (nor does Alertmanager report it firing since before the window's end)"
    return _judgement(Verdict.EFFECTIVE, evidence, detail)


def _recurrence(
    request: VerificationRequest, recurrences: tuple[LinkedRecurrence, ...], judged_at: datetime
) -> Judgement:
    within = sorted(
        (one for one in recurrences if request.window_start <= one.at <= request.window_end),
        key=lambda one: (one.at, one.review_id),
    )
    before = [one for one in recurrences if request.done_at - request.window <= one.at < request.done_at]
    evidence = {
        "method": VerificationMethod.RECURRENCE,
        "judged_by": JUDGED_BY_RECURRENCE,
        "judged_at": judged_at,
        "window_start": request.window_start,
        "window_end": request.window_end,
        "baseline": float(len(before)),
        "observed": float(len(within)),
    }
    if within:
        named = "; ".join(
            f"review {one.review_id} (incident {one.incident_key}) at {one.at.isoformat()}"
            for one in within[:MAX_NAMED_RECURRENCES]
        )
        more = len(within) - MAX_NAMED_RECURRENCES
        named += f"; and {more} more" if more > 0 else ""
        detail = f"the incident recurred {len(within)} time(s) during the window: {named}"
        return _judgement(Verdict.NOT_EFFECTIVE, evidence, detail)
    return _judgement(Verdict.EFFECTIVE, evidence, "no recurrence of the incident was linked during the window")


def _single_value(answer: Answer | None, when: str) -> tuple[float | None, str]:
    if not isinstance(answer, Values):
        return None, _unanswered(answer)
    if not answer.values:
        return None, f"{Problem.NO_DATA}: the expression selected nothing {when}"
    if len(answer.values) > 1:
        count = len(answer.values)
        return None, f"{Problem.QUERY_ERROR}: {count} series {when}; the expression must give one value (aggregate it)"
    value = answer.values[0]
    if not math.isfinite(value):
        return None, f"{Problem.NO_DATA}: the value {when} is {value}"
    return value, ""


def _unanswered(answer: NoAnswer | None) -> str:
    if answer is None:
        return f"{Problem.QUERY_ERROR}: not asked"
    return f"{answer.problem}: {answer.detail}"


def _judgement(verdict: Verdict, evidence: dict[str, object], detail: str) -> Judgement:
    return Judgement(verdict, Evidence.model_validate({**evidence, "detail": _cut(detail, MAX_DETAIL_CHARS)}))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def remediation_verified(
    request: VerificationRequest, attempt: int, due_at: datetime, judgement: Judgement
) -> RemediationVerified:
    """The event announcing one attempt: its id comes from the attempt's timer, its time is when it was due."""
    tid = attempt_timer_id(request.series, attempt)
    return RemediationVerified(
        event_id=followup_event_id(tid),
        occurred_at=due_at,
        review_id=request.review_id,
        timer_id=tid,
        incident_key=request.incident_key,
        title=request.title,
        severity=request.severity,
        team=request.team,
        owner=request.owner,
        action_item_id=request.action_item_id,
        action_item_title=request.action_item_title,
        priority=request.priority,
        verification=request.plan,
        verdict=judgement.verdict,
        evidence=judgement.evidence,
        attempt=attempt,
    )


def _compact(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return f"{utc:%Y%m%dT%H%M%S}{fraction}Z"
