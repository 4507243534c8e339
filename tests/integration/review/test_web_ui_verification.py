"""The web UI's follow-up section and verified remediation, in process (httpx over ASGI) against the real
MongoDB-compatible server: plans edited in an item's form, verdicts with their evidence, the manual verdict form."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from schemas import (
    ActionItemStatus,
    Escalated,
    ReminderDue,
    Severity,
    Verdict,
    VerificationMethod,
    VerificationPlan,
    followup_event_id,
)
from services.review.domain.editing import ActionItemDraft
from services.review.domain.record import Review
from tests.integration.review.conftest import ADMIN, EDITOR, OTHER_EDITOR, VIEWER, ReviewApp, incident
from tests.integration.review.test_web_ui import csrf_token, hidden, sign_in
from tests.support.verification import METRIC_CHECK, remediation_verified

pytestmark = pytest.mark.integration

MakeApp = Callable[..., AbstractAsyncContextManager[ReviewApp]]
MANUAL_BY_EVE = VerificationPlan(method=VerificationMethod.MANUAL, verifier="eve")


@pytest.fixture
async def web(make_review_app: MakeApp) -> AsyncIterator[ReviewApp]:
    async with make_review_app(web_session_secret="test-secret-0123456789") as review_app:
        yield review_app


async def with_item(web: ReviewApp, incident_id: str, plan: VerificationPlan | None, **fields: Any) -> Review:
    review = await web.open(incident(incident_id))
    draft = ActionItemDraft(title="Add backoff to the order worker", owner="erin", verification=plan, **fields)
    return await web.service.add_action_item(review.id, review.version, draft, "erin")


def item_form(page: httpx.Response, review: Review, item_id: str, **values: str) -> dict[str, str]:
    action = f"/review/{review.id}/action-items/{item_id}"
    return {
        "csrf_token": csrf_token(page),
        "version": hidden(page, action, "version"),
        "base": hidden(page, action, "base"),
        "title": "Add backoff to the order worker",
        "owner": "erin",
        "priority": "medium",
        "category": "other",
        "status": "open",
        **values,
    }


def verdict_form(page: httpx.Response, review: Review, **values: str) -> dict[str, str]:
    return {"csrf_token": csrf_token(page), "version": str(review.version), "links": "", **values}


async def test_the_follow_up_section_shows_what_follow_up_did_and_will_do(web: ReviewApp) -> None:
    review = await with_item(web, "WEB-FOLLOWUP", VerificationPlan.model_validate(METRIC_CHECK), status="done")
    second = ActionItemDraft(
        title="Alert on retry storms",
        status=ActionItemStatus.DONE,
        verification=VerificationPlan.model_validate(METRIC_CHECK),
    )
    review = await web.service.add_action_item(review.id, review.version, second, "erin")
    reminder = ReminderDue(
        event_id=followup_event_id("web-reminder"),
        occurred_at=review.created_at,
        review_id=review.id,
        timer_id="web-reminder",
        incident_key=review.incident_key,
        title=review.incident.title,
        severity=Severity.CRITICAL,
        owner="alice",
        subject="review",
        due_at=review.created_at + timedelta(days=5),
        before_seconds=86_400,
    )
    escalated = Escalated(
        **{**reminder.model_dump(exclude={"type", "subject", "before_seconds"}), "event_id": followup_event_id("e")},
        subject="review",
        level=2,
        target="head_of_payments",
        overdue_seconds=3_600,
    )
    not_effective = remediation_verified(review.id, review.incident_key, "AI-1", Verdict.NOT_EFFECTIVE)
    for event in (reminder, escalated, not_effective):
        await web.service.apply_followup_event(event)
    await sign_in(web.http, VIEWER)

    page = (await web.http.get(f"/review/{review.id}")).text

    followup = page.split('id="followup-title"', 1)[1].split("</section>", 1)[0]
    assert "alice reminded about the review" in followup
    assert "Escalation: level 2, to head_of_payments." in followup
    assert "Awaiting verification by follow-up: " in followup
    assert '<a href="#item-AI-2">AI-2</a>' in followup  # done, measurable, not judged yet
    assert "#item-AI-1" not in followup  # judged conclusively
    assert "✖ Not effective" in followup  # the attempt, in words
    assert "compared over 7 days" in followup
    verification = page.split('id="item-AI-1-verification-title"', 1)[1].split("</section>", 1)[0]
    assert "✖ Not effective" in verification
    assert "↺ Reopened the lesson" in verification
    assert "order_retry_rate{service=&#34;orders&#34;}" in verification  # the expression, escaped
    assert "<dt>Baseline (before the change)</dt><dd>12.0</dd>" in verification
    assert "<dt>Observed</dt><dd>9.5</dd>" in verification
    assert "followup/prometheus (attempt 1)" in verification
    assert "↺ Reopened</strong>" in page  # the review's flag, beside its status
    assert "AI-1 was verified not effective" in page


async def test_an_invalid_plan_is_refused_next_to_its_fields_and_a_valid_one_saved(web: ReviewApp) -> None:
    review = await with_item(web, "WEB-PLAN", None)
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    assert 'id="item-AI-1-verification_method"' in page.text
    typed = item_form(page, review, "AI-1", verification_method="metric", verification_query="rate(errors_total[5m])")

    refused = await web.http.post(f"/review/{review.id}/action-items/AI-1", data=typed)

    assert refused.status_code == 422
    assert (
        '<span class="field-error" id="item-AI-1-verification_method-error">Error: a metric verification needs '
        "query, comparison and threshold</span>" in refused.text
    )
    assert 'value="rate(errors_total[5m])"' in refused.text  # what was typed, kept
    not_a_number = item_form(
        page,
        review,
        "AI-1",
        verification_method="metric",
        verification_query="up",
        verification_comparison="<",
        verification_threshold="half",
    )
    refused = await web.http.post(f"/review/{review.id}/action-items/AI-1", data=not_a_number)
    assert refused.status_code == 422
    assert 'id="item-AI-1-verification_threshold-error"' in refused.text
    assert (await web.service.get(review.id)).action_items[0].verification is None

    plan = item_form(
        page,
        review,
        "AI-1",
        verification_method="alert",
        verification_alert_name="CheckoutLatencyHigh",
        verification_alert_matchers="job=checkout\nseverity=page",
        verification_verifier="eve",
        verification_window_seconds="604800",
    )
    assert (await web.http.post(f"/review/{review.id}/action-items/AI-1", data=plan)).status_code == 303
    stored = (await web.service.get(review.id)).action_items[0].verification
    assert stored == VerificationPlan(
        method=VerificationMethod.ALERT,
        alert_name="CheckoutLatencyHigh",
        alert_matchers={"job": "checkout", "severity": "page"},
        verifier="eve",
        window_seconds=604_800,
    )
    shown = await web.http.get(f"/review/{review.id}")
    assert 'value="CheckoutLatencyHigh"' in shown.text
    assert "alert <code>CheckoutLatencyHigh</code> must not fire" in shown.text
    assert "<dt>Window</dt><dd>7 d," in shown.text


async def test_the_owner_is_offered_no_verdict_form_and_is_refused(web: ReviewApp) -> None:
    review = await with_item(web, "WEB-OWNER", MANUAL_BY_EVE, status="done")
    await sign_in(web.http, EDITOR)  # erin owns AI-1
    page = await web.http.get(f"/review/{review.id}")
    assert "Record verdict on AI-1" not in page.text
    assert "eve" in page.text.split('id="item-AI-1-verification-title"', 1)[1].split("</section>", 1)[0]

    forged = verdict_form(page, review, verdict="effective", evidence="It works, trust me")
    answer = await web.http.post(f"/review/{review.id}/action-items/AI-1/verdict", data=forged)

    assert answer.status_code == 403
    assert "erin owns AI-1 and may not verify their own remediation" in answer.text
    assert (await web.service.get(review.id)).action_items[0].verification_result is None
    for token, offered in ((VIEWER, False), (ADMIN, True), (OTHER_EDITOR, True)):
        await sign_in(web.http, token)
        assert ("Record verdict on AI-1" in (await web.http.get(f"/review/{review.id}")).text) is offered, token


async def test_the_verifier_records_a_verdict_and_its_evidence_is_inert(web: ReviewApp) -> None:
    review = await with_item(web, "WEB-VERDICT", MANUAL_BY_EVE, status="done")
    await sign_in(web.http, OTHER_EDITOR)  # eve, the verifier
    page = await web.http.get(f"/review/{review.id}")
    assert "Record verdict on AI-1" in page.text
    evidence = 'Load test passed <script>alert("x")</script> <img src=x onerror=alert(1)>'
    bad_link = verdict_form(page, review, verdict="effective", evidence=evidence, links="javascript:alert(1)")

    refused = await web.http.post(f"/review/{review.id}/action-items/AI-1/verdict", data=bad_link)

    assert refused.status_code == 422
    assert 'id="verdict-AI-1-links-error"' in refused.text
    links = "https://grafana.example/d/checkout?from=now-7d&to=now\nhttps://tickets.example/OPS-42"
    good = verdict_form(page, review, verdict="effective", evidence=evidence, links=links)
    assert (await web.http.post(f"/review/{review.id}/action-items/AI-1/verdict", data=good)).status_code == 303
    result = (await web.service.get(review.id)).action_items[0].verification_result
    assert result is not None
    assert (result.verdict, result.recorded_by, result.evidence.detail) == (Verdict.EFFECTIVE, "eve", evidence)

    for path in (f"/review/{review.id}", f"/review/{review.id}/postmortem"):
        shown = (await web.http.get(path)).text
        assert "<script>alert" not in shown
        assert "<img src=x" not in shown
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown, path
        assert "✔ Effective" in shown
        assert '<a href="https://grafana.example/d/checkout?from=now-7d&amp;to=now" rel="noopener noreferrer">' in shown
        assert "<dt>Judged by</dt><dd>eve</dd>" in shown
    assert "Record verdict on AI-1" in (await web.http.get(f"/review/{review.id}")).text  # may correct it
