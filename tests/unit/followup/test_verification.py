"""Remediation verification, pure: which evaluations are pending, what is asked, and the verdict with its evidence."""

from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

import pytest

from schemas import (
    ActionItemPriority,
    ActionItemStatus,
    ActionItemUpdated,
    AnyReviewEvent,
    ReviewStatus,
    VerificationRecorded,
    followup_event_adapter,
    followup_event_id,
)
from schemas.verification import Comparison, Evidence, Verdict, VerificationMethod, VerificationPlan
from services.followup.domain.answers import Firing, FiringAlert, NoAnswer, Problem, Values
from services.followup.domain.projection import ReviewView, apply_event
from services.followup.domain.verification import (
    Answers,
    LinkedRecurrence,
    PlannedVerification,
    Question,
    Timing,
    VerificationPolicy,
    VerificationRequest,
    attempt_timer_id,
    judge,
    plan_verifications,
    questions,
    remediation_verified,
)
from services.followup.metrics import FollowupMetrics
from tests.unit.followup.builders import DAY, T0, ReviewStory

POLICY = VerificationPolicy()
DONE_AT = T0 + 3 * DAY
METRIC = VerificationPlan(
    method=VerificationMethod.METRIC,
    query='max_over_time(probe_duration_seconds{job="checkout"}[$window])',
    comparison=Comparison.LT,
    threshold=0.5,
    window_seconds=7 * 86_400,
    stabilisation_seconds=86_400,
    verifier="carol",
)
ALERT = VerificationPlan(
    method=VerificationMethod.ALERT, alert_name="CheckoutSlow", alert_matchers={"service": 'check"out'}
)
RECURRENCE = VerificationPlan(method=VerificationMethod.RECURRENCE, window_seconds=10 * 86_400)
MANUAL = VerificationPlan(method=VerificationMethod.MANUAL)
JUDGED_AT = T0 + 20 * DAY


def with_plan(event: ActionItemUpdated, plan: VerificationPlan | None) -> ActionItemUpdated:
    return event.model_copy(update={"verification": plan})


def view_of(*events: AnyReviewEvent) -> ReviewView:
    view = None
    for event in events:
        view = apply_event(view, event).view
    assert view is not None
    return view


def done_item(
    plan: VerificationPlan | None, priority: ActionItemPriority = ActionItemPriority.HIGH
) -> tuple[ReviewStory, list[AnyReviewEvent]]:
    story = ReviewStory()
    events: list[AnyReviewEvent] = [
        story.opened(),
        story.item_added(at=T0 + DAY, priority=priority),
        with_plan(story.item_updated(at=DONE_AT, status=ActionItemStatus.DONE, priority=priority), plan),
    ]
    return story, events


def recorded(story: ReviewStory, verdict: Verdict, at: datetime) -> VerificationRecorded:
    story.version += 1
    return VerificationRecorded(
        event_id=uuid5(NAMESPACE_URL, f"{story.review_id}/{story.version}"),
        occurred_at=at,
        review_id=story.review_id,
        version=story.version,
        action_item_id="a-1",
        title="Alert on queue depth",
        verdict=verdict,
        evidence=Evidence(method=VerificationMethod.METRIC, judged_by="followup/prometheus", judged_at=at),
    )


def planned_for(plan: VerificationPlan) -> PlannedVerification:
    _, events = done_item(plan)
    (planned,) = plan_verifications(view_of(*events), POLICY)
    return planned


# Planning.


def test_a_done_item_with_a_measurable_plan_is_evaluated_after_stabilisation_and_window() -> None:
    planned = planned_for(METRIC)

    request = planned.request
    assert (request.done_at, request.window_start, request.window_end) == (DONE_AT, DONE_AT + DAY, DONE_AT + 8 * DAY)
    assert planned.due_at == DONE_AT + 8 * DAY + POLICY.evaluation_delay
    assert request.owner == "carol"  # the verifier, not the owner (bob)
    assert planned.timer_id.startswith("r-1:verification:item.a-1.")
    assert planned.timer_id.endswith("@20261209T090000Z#1")
    assert planned_for(METRIC) == planned  # the same facts plan the same evaluation


def test_defaults_by_priority_apply_where_the_plan_says_nothing() -> None:
    policy = VerificationPolicy(
        timings={
            **POLICY.timings,
            ActionItemPriority.CRITICAL: Timing(stabilisation=timedelta(hours=6), window=timedelta(days=3)),
        }
    )
    _, events = done_item(ALERT, ActionItemPriority.CRITICAL)

    (planned,) = plan_verifications(view_of(*events), policy)

    assert planned.request.window_start == DONE_AT + timedelta(hours=6)
    assert planned.request.window_end == DONE_AT + timedelta(hours=6) + 3 * DAY


@pytest.mark.parametrize("plan", [None, MANUAL])
def test_items_without_a_measurable_plan_are_not_evaluated(plan: VerificationPlan | None) -> None:
    _, events = done_item(plan)
    assert plan_verifications(view_of(*events), POLICY) == ()


def test_an_item_not_done_is_not_evaluated_and_reopening_cancels_the_evaluation() -> None:
    story, events = done_item(METRIC)
    reopened = with_plan(story.item_updated(at=DONE_AT + DAY, status=ActionItemStatus.IN_PROGRESS), METRIC)
    again = with_plan(story.item_updated(at=DONE_AT + 2 * DAY, status=ActionItemStatus.DONE), METRIC)
    first = plan_verifications(view_of(*events), POLICY)

    assert plan_verifications(view_of(*events, reopened), POLICY) == ()
    (redone,) = plan_verifications(view_of(*events, reopened, again), POLICY)
    assert redone.request.done_at == DONE_AT + 2 * DAY
    assert redone.timer_id != first[0].timer_id


def test_a_changed_plan_replaces_the_pending_evaluation() -> None:
    story, events = done_item(METRIC)
    stricter = METRIC.model_copy(update={"threshold": 0.3})
    changed = with_plan(story.item_updated(at=DONE_AT + DAY, status=ActionItemStatus.DONE), stricter)

    (before,) = plan_verifications(view_of(*events), POLICY)
    (after,) = plan_verifications(view_of(*events, changed), POLICY)

    assert after.request.plan == stricter
    assert after.request.done_at == DONE_AT  # still done since then: only the plan changed
    assert after.timer_id != before.timer_id


def test_a_final_verdict_recorded_ends_the_evaluation_an_inconclusive_one_does_not() -> None:
    story, events = done_item(METRIC)
    inconclusive = recorded(story, Verdict.INCONCLUSIVE, DONE_AT + 9 * DAY)
    effective = recorded(story, Verdict.EFFECTIVE, DONE_AT + 10 * DAY)

    assert len(plan_verifications(view_of(*events, inconclusive), POLICY)) == 1
    assert plan_verifications(view_of(*events, inconclusive, effective), POLICY) == ()


def test_a_dropped_review_evaluates_nothing() -> None:
    story, events = done_item(METRIC)
    cancelled = story.status(at=DONE_AT + DAY, from_status=ReviewStatus.PUBLISHED, to_status=ReviewStatus.CANCELLED)
    assert plan_verifications(view_of(*events, cancelled), POLICY) == ()


# Backoff.


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    policy = VerificationPolicy(retry_first=timedelta(minutes=5), retry_max=timedelta(hours=1))
    delays = [policy.retry_delay(attempt) for attempt in range(1, 8)]
    assert delays == [timedelta(minutes=minutes) for minutes in (5, 10, 20, 40, 60, 60, 60)]
    assert policy.retry_delay(10_000) == timedelta(hours=1)
    with pytest.raises(ValueError, match="from 1"):
        policy.retry_delay(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retry_first": timedelta(0)}, "positive first delay"),
        ({"retry_first": timedelta(hours=2), "retry_max": timedelta(hours=1)}, "positive first delay"),
        ({"evaluation_delay": timedelta(seconds=-1)}, "evaluation delay"),
        ({"timings": {ActionItemPriority.HIGH: Timing(timedelta(0), timedelta(days=1))}}, "every priority"),
        ({"timings": {**POLICY.timings, ActionItemPriority.LOW: Timing(timedelta(0), timedelta(0))}}, "positive"),
    ],
)
def test_an_invalid_policy_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerificationPolicy(**changes)  # type: ignore[arg-type]


# Questions.


def test_a_metric_is_asked_at_the_window_end_and_at_done_with_the_window_filled_in() -> None:
    request = planned_for(METRIC).request
    asked = questions(request)
    expression = 'max_over_time(probe_duration_seconds{job="checkout"}[604800s])'
    assert asked.observed == Question(expression, request.window_end)
    assert asked.baseline == Question(expression, DONE_AT)


def test_an_alert_asks_for_firing_samples_over_the_window_with_escaped_matchers() -> None:
    request = planned_for(ALERT).request
    seconds = int(request.window.total_seconds())
    asked = questions(request)
    expression = (
        f'max_over_time(ALERTS{{alertname="CheckoutSlow",alertstate="firing",service="check\\"out"}}[{seconds}s])'
    )
    assert asked.observed == Question(expression, request.window_end)
    assert asked.coverage == Question(f"count(count_over_time(up[{seconds}s]))", request.window_end)


@pytest.mark.parametrize("label", ["alertstate", "bad-label", "0x"])
def test_an_alert_matcher_that_is_no_label_name_is_not_asked_but_inconclusive(label: str) -> None:
    request = planned_for(ALERT.model_copy(update={"alert_matchers": {label: "x"}})).request
    asked = questions(request)

    judgement = judge(request, asked, Answers(), (), JUDGED_AT)

    assert asked.observed is None
    assert judgement.verdict is Verdict.INCONCLUSIVE
    assert judgement.evidence.detail == f"query_error: invalid alert matcher label(s): {label}"


# Verdicts.


def metric_verdict(observed: object, baseline: object = None) -> tuple[Verdict, Evidence]:
    request = planned_for(METRIC).request
    answers = Answers(observed=observed, baseline=baseline)  # type: ignore[arg-type]
    judgement = judge(request, questions(request), answers, (), JUDGED_AT)
    return judgement.verdict, judgement.evidence


def test_a_metric_under_its_threshold_is_effective_with_its_evidence() -> None:
    verdict, evidence = metric_verdict(Values((0.3,)), Values((0.9,)))

    assert verdict is Verdict.EFFECTIVE
    assert (evidence.observed, evidence.baseline, evidence.threshold, evidence.comparison) == (0.3, 0.9, 0.5, "<")
    assert evidence.expression == 'max_over_time(probe_duration_seconds{job="checkout"}[604800s])'
    assert (evidence.judged_by, evidence.judged_at) == ("followup/prometheus", JUDGED_AT)
    assert (evidence.window_start, evidence.window_end) == (DONE_AT + DAY, DONE_AT + 8 * DAY)
    assert evidence.detail == "0.3 < 0.5 holds (baseline 0.9)"


def test_a_metric_over_its_threshold_is_not_effective() -> None:
    verdict, evidence = metric_verdict(Values((0.7,)), NoAnswer(Problem.NO_DATA, "x"))

    assert verdict is Verdict.NOT_EFFECTIVE
    assert (evidence.observed, evidence.baseline) == (0.7, None)
    assert evidence.detail == "0.7 < 0.5 does not hold (no baseline: no_data: x)"


@pytest.mark.parametrize(
    ("observed", "detail"),
    [
        (NoAnswer(Problem.UNREACHABLE, "ConnectError: refused"), "unreachable: ConnectError: refused"),
        (NoAnswer(Problem.QUERY_ERROR, "bad_data: parse error"), "query_error: bad_data: parse error"),
        (Values(()), "no_data: the expression selected nothing at the window's end"),
        (
            Values((0.1, 0.2)),
            "query_error: 2 series at the window's end; the expression must give one value (aggregate it)",
        ),
        (Values((float("nan"),)), "no_data: the value at the window's end is nan"),
    ],
)
def test_a_metric_without_one_usable_value_is_inconclusive(observed: object, detail: str) -> None:
    verdict, evidence = metric_verdict(observed, Values((0.9,)))

    assert verdict is Verdict.INCONCLUSIVE
    assert evidence.detail == detail
    assert evidence.observed is None
    assert evidence.baseline == 0.9


def alert_verdict(answers: Answers) -> tuple[Verdict, Evidence]:
    request = planned_for(ALERT).request
    judgement = judge(request, questions(request), answers, (), JUDGED_AT)
    return judgement.verdict, judgement.evidence


def test_an_alert_that_never_fired_while_prometheus_has_data_is_effective() -> None:
    verdict, evidence = alert_verdict(Answers(Values(()), Values((1.0,)), Values((3.0,))))
    assert verdict is Verdict.EFFECTIVE
    assert (evidence.observed, evidence.baseline) == (0.0, 1.0)


def test_an_alert_that_fired_during_the_window_is_not_effective() -> None:
    verdict, evidence = alert_verdict(Answers(Values((1.0, 1.0)), Values(()), NoAnswer(Problem.UNREACHABLE, "x")))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.observed == 2.0
    assert evidence.detail == "the alert fired during the window (2 series)"


@pytest.mark.parametrize(
    ("answers", "detail"),
    [
        (Answers(NoAnswer(Problem.UNREACHABLE, "timeout"), Values(()), Values((1.0,))), "unreachable: timeout"),
        (
            Answers(Values(()), Values(()), Values(())),
            "no_data: Prometheus holds no samples of up during the window (down, or not kept)",
        ),
        (Answers(Values(()), Values(()), NoAnswer(Problem.QUERY_ERROR, "boom")), "query_error: boom"),
    ],
)
def test_no_alert_without_proof_that_prometheus_was_watching_is_inconclusive(answers: Answers, detail: str) -> None:
    verdict, evidence = alert_verdict(answers)
    assert verdict is Verdict.INCONCLUSIVE
    assert evidence.detail == detail


def test_alertmanager_is_asked_about_the_alert_name_and_matchers() -> None:
    asked = questions(planned_for(ALERT).request)
    assert asked.alert_matchers == (("alertname", "CheckoutSlow"), ("service", 'check"out'))
    assert questions(planned_for(METRIC).request).alert_matchers is None


def firing_since(*moments: datetime) -> Firing:
    return Firing(tuple(FiringAlert(f"fp{n}", moment) for n, moment in enumerate(moments)))


QUIET = (Values(()), Values(()), Values((3.0,)))  # Prometheus: no alert, and it was watching


def test_an_alert_alertmanager_reports_firing_since_before_the_window_end_is_not_effective() -> None:
    window_end = planned_for(ALERT).request.window_end
    started = window_end - DAY
    verdict, evidence = alert_verdict(Answers(*QUIET, firing_since(window_end + DAY, started)))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.observed == 1.0
    assert evidence.detail == (
        f"the alert fired during the window: Alertmanager reports 1 firing since {started.isoformat()}, "
        "before the window's end"
    )

    # Proof that it fired needs no proof that Prometheus was watching.
    verdict, evidence = alert_verdict(Answers(NoAnswer(Problem.UNREACHABLE, "t"), None, None, firing_since(started)))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.detail.endswith("before the window's end (Prometheus: unreachable: t)")

    verdict, evidence = alert_verdict(Answers(Values((1.0,)), Values(()), Values((3.0,)), firing_since(started)))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.detail == (
        f"the alert fired during the window (1 series); Alertmanager reports 1 firing since {started.isoformat()}"
    )


def test_an_alert_alertmanager_reports_only_since_after_the_window_leaves_the_verdict_to_prometheus() -> None:
    after = planned_for(ALERT).request.window_end + timedelta(seconds=1)
    verdict, evidence = alert_verdict(Answers(*QUIET, firing_since(after)))
    assert verdict is Verdict.EFFECTIVE
    assert evidence.observed == 0.0
    assert evidence.detail == (
        "the alert did not fire during the window "
        "(nor does Alertmanager report it firing since before the window's end)"
    )
    verdict, evidence = alert_verdict(Answers(*QUIET))  # no Alertmanager configured
    assert (verdict, evidence.detail) == (Verdict.EFFECTIVE, "the alert did not fire during the window")


def test_an_alertmanager_that_does_not_answer_keeps_no_alert_in_prometheus_inconclusive() -> None:
    verdict, evidence = alert_verdict(Answers(*QUIET, NoAnswer(Problem.UNREACHABLE, "ConnectError: refused")))
    assert verdict is Verdict.INCONCLUSIVE
    assert evidence.detail == (
        "unreachable: Alertmanager: ConnectError: refused (Prometheus saw no alert during the window)"
    )


def recurrence_verdict(at: tuple[datetime, ...]) -> tuple[VerificationRequest, Verdict, Evidence]:
    request = planned_for(RECURRENCE).request
    linked = tuple(LinkedRecurrence(f"r-later-{n}", f"generic:LATER-{n}", moment) for n, moment in enumerate(at))
    judgement = judge(request, questions(request), Answers(), linked, JUDGED_AT)
    return request, judgement.verdict, judgement.evidence


def test_no_recurrence_during_the_window_is_effective_one_is_not() -> None:
    request, verdict, evidence = recurrence_verdict((DONE_AT - DAY, DONE_AT + timedelta(hours=1)))
    assert verdict is Verdict.EFFECTIVE
    # Before the change counts as the baseline; during stabilisation counts for neither.
    assert (evidence.baseline, evidence.observed, evidence.judged_by) == (1.0, 0.0, "followup/recurrence")

    during = request.window_start + DAY
    _, verdict, evidence = recurrence_verdict((during, request.window_end + DAY))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.observed == 1.0
    assert evidence.detail == (
        "the incident recurred 1 time(s) during the window: "
        f"review r-later-0 (incident generic:LATER-0) at {during.isoformat()}"
    )


def test_a_verdict_against_recurrences_names_the_first_five_recurring_reviews_and_counts_the_rest() -> None:
    request = planned_for(RECURRENCE).request
    at = tuple(request.window_start + timedelta(hours=hours) for hours in range(7))
    _, verdict, evidence = recurrence_verdict(tuple(reversed(at)))
    assert verdict is Verdict.NOT_EFFECTIVE
    assert evidence.observed == 7.0
    # Earliest first: the last one built is the first that recurred.
    assert evidence.detail.startswith("the incident recurred 7 time(s) during the window: review r-later-6 (")
    assert [f"r-later-{n}" in evidence.detail for n in range(7)] == [False, False, True, True, True, True, True]
    assert evidence.detail.endswith("; and 2 more")


def test_each_attempt_is_its_own_event_published_with_the_same_id_whoever_fires_it() -> None:
    planned = planned_for(METRIC)
    request = planned.request
    judgement = judge(request, questions(request), Answers(Values(()), Values(())), (), JUDGED_AT)
    due = planned.due_at + timedelta(minutes=5)

    event = remediation_verified(request, 2, due, judgement)

    assert event.timer_id == attempt_timer_id(request.series, 2)
    assert event.event_id == followup_event_id(event.timer_id)
    assert (event.attempt, event.occurred_at, event.verdict, event.owner) == (2, due, Verdict.INCONCLUSIVE, "carol")
    assert (event.action_item_id, event.priority, event.verification) == ("a-1", ActionItemPriority.HIGH, METRIC)
    assert followup_event_adapter.validate_json(event.model_dump_json()) == event
    assert remediation_verified(request, 2, due, judgement) == event


def test_final_verdicts_recorded_by_review_are_counted_by_severity_inconclusive_ones_are_not() -> None:
    story, events = done_item(METRIC)
    view = view_of(*events)
    metrics = FollowupMetrics.create()

    for verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_EFFECTIVE):
        applied = apply_event(view, recorded(story, verdict, DONE_AT + 9 * DAY))
        assert applied.view is not None
        view = applied.view
        for fact in applied.facts:
            metrics.record(fact)

    def counted(verdict: str) -> float | None:
        return metrics.registry.get_sample_value(
            "lessons_remediation_verdicts_total", {"severity": "high", "verdict": verdict}
        )

    assert (counted("effective"), counted("not_effective")) == (0.0, 1.0)
    assert view.item("a-1").verdict is Verdict.NOT_EFFECTIVE  # type: ignore[union-attr]


def test_a_window_too_long_to_ever_end_plans_nothing_rather_than_failing() -> None:
    _, events = done_item(METRIC.model_copy(update={"window_seconds": 10**12}))
    assert plan_verifications(view_of(*events), POLICY) == ()
