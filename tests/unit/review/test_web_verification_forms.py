"""The verification plan and the manual verdict as the item's forms state them (no network)."""

import pytest

from schemas import Verdict, VerificationMethod, VerificationPlan
from services.review.web.forms import (
    FormRefusal,
    Values,
    action_item_edit,
    field_name,
    manual_verdict,
    plan_values,
)

ALERT = VerificationPlan(
    method=VerificationMethod.ALERT,
    alert_name="CheckoutLatencyHigh",
    alert_matchers={"job": "checkout", "severity": "page"},
    verifier="eve",
    window_seconds=86_400,
)


def test_a_plan_drawn_in_the_form_comes_back_the_same_plan() -> None:
    drawn = plan_values(ALERT)
    edited = {**drawn, "verification_alert_matchers": "job=checkout\r\nseverity = page\r\n"}  # as a browser posts it
    edit = action_item_edit(edited, drawn)
    assert edit.verification == ALERT


def test_an_untouched_plan_is_not_sent_and_no_method_removes_it() -> None:
    drawn = plan_values(ALERT)
    assert "verification" not in action_item_edit(drawn, drawn).model_fields_set
    cleared: Values = dict.fromkeys(drawn, "")
    edit = action_item_edit(cleared, drawn)
    assert "verification" in edit.model_fields_set
    assert edit.verification is None


@pytest.mark.parametrize(
    ("typed", "field", "reason"),
    [
        ({"verification_method": "metric", "verification_query": "up"}, "verification_method", "needs query"),
        ({"verification_verifier": "eve"}, "verification_method", "choose how success is measured"),
        (
            {"verification_method": "alert", "verification_alert_name": "A", "verification_alert_matchers": "job"},
            "verification_alert_matchers",
            "label=value",
        ),
        (
            {
                "verification_method": "metric",
                "verification_query": "up",
                "verification_comparison": "<",
                "verification_threshold": "half",
            },
            "verification_threshold",
            "valid number",
        ),
    ],
)
def test_an_invalid_plan_is_refused_beside_its_field(typed: dict[str, str], field: str, reason: str) -> None:
    drawn = plan_values(None)
    with pytest.raises(FormRefusal) as refused:
        action_item_edit({**drawn, **typed}, drawn)
    assert reason in refused.value.errors[field]


def test_a_manual_verdict_takes_links_one_per_line_and_refuses_other_schemes() -> None:
    verdict = manual_verdict({"verdict": "effective", "evidence": " checked ", "links": "https://a.example/1\n\n"})
    assert (verdict.verdict, verdict.evidence, verdict.links) == (Verdict.EFFECTIVE, "checked", ["https://a.example/1"])
    with pytest.raises(FormRefusal) as refused:
        manual_verdict({"verdict": "", "evidence": "", "links": "javascript:alert(1)"})
    assert set(refused.value.errors) == {"verdict", "evidence", "links"}


def test_plan_errors_name_the_form_fields() -> None:
    assert field_name(("verification", "threshold")) == "verification_threshold"
    assert field_name(("verification",)) == "verification_method"
