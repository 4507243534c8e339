"""The review policy: the file's format, its default, and the decisions it makes."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import Severity
from services.review.domain.policy import PolicyError, ReviewPolicy, add_business_days, parse_policy
from services.review.policy_file import load_policy
from services.review.settings import DEFAULT_POLICY_FILE
from tests.unit.review.builders import RESOLVED, incident

FRIDAY = RESOLVED

CHOSEN_SERVICES = """
version: 1
rules:
  - name: critical-and-high
    when: {severity: [critical, high]}
    review: required
  - name: medium-on-money-paths
    when: {severity: medium, service: [Payments-API, checkout]}
    review: required
  - name: security-labelled
    when: {labels: {category: [security, privacy]}, team: payments}
    review: required
otherwise: not_required
due:
  count: business
  days: {critical: 2, high: 5}
  default_days: 10
required_sections: [owner, participants]
owners:
  by_service: {payments-api: alice}
  by_team: {payments: bob, fulfilment: erin}
  default: incident-manager
"""


def test_the_default_file_is_the_built_in_default() -> None:
    assert load_policy(DEFAULT_POLICY_FILE) == ReviewPolicy()


@pytest.mark.parametrize(
    ("severity", "required", "due"),
    [
        (Severity.CRITICAL, True, datetime(2026, 12, 2, 10, 0, tzinfo=UTC)),
        (Severity.HIGH, True, datetime(2026, 12, 4, 10, 0, tzinfo=UTC)),
        (Severity.MEDIUM, True, datetime(2026, 12, 11, 10, 0, tzinfo=UTC)),
        (Severity.LOW, False, None),
        (Severity.UNKNOWN, False, None),
    ],
)
def test_the_default_keeps_the_former_behaviour(severity: Severity, required: bool, due: datetime | None) -> None:
    decision = load_policy(DEFAULT_POLICY_FILE).decide(incident(severity=severity))
    assert (decision.required, decision.due_at) == (required, due)


def test_a_decision_says_which_rule_decided_and_why() -> None:
    policy = ReviewPolicy()
    high = policy.decide(incident(severity=Severity.HIGH))
    assert high.rule == "critical-high-medium"
    assert high.reason == (
        "rule 'critical-high-medium' (severity in critical, high, medium): "
        "review required within 7 calendar days of resolution"
    )
    assert high.required_sections == ("owner", "analysis.what_went_wrong", "contributing_factors")
    low = policy.decide(incident(severity=Severity.LOW))
    assert low.rule is None
    assert low.reason == "no rule matched severity low, so otherwise: not_required: no review needed"
    assert low.required_sections == ()


def test_rules_match_on_severity_service_team_and_labels_first_match_wins() -> None:
    policy = parse_policy(CHOSEN_SERVICES)
    cases = {
        "critical anywhere": (incident(severity=Severity.CRITICAL, service="search"), "critical-and-high"),
        "medium on a chosen service (any case)": (
            incident(severity=Severity.MEDIUM, service="payments-api"),
            "medium-on-money-paths",
        ),
        "medium elsewhere": (incident(severity=Severity.MEDIUM, service="search"), None),
        "low, labelled, right team": (
            incident(severity=Severity.LOW, team="Payments", labels={"category": "privacy"}),
            "security-labelled",
        ),
        "low, labelled, other team": (
            incident(severity=Severity.LOW, team="search", labels={"category": "security"}),
            None,
        ),
        "low, no labels": (incident(severity=Severity.LOW, team="payments", labels={}), None),
    }
    for name, (closed, rule) in cases.items():
        decision = policy.decide(closed)
        assert (decision.rule, decision.required) == (rule, rule is not None), name


def test_a_rule_can_say_no_review_and_otherwise_can_say_review() -> None:
    policy = parse_policy(
        """
        rules:
          - {name: staging-never, when: {labels: {env: staging}}, review: not_required}
        otherwise: required
        """
    )
    assert not policy.decide(incident(labels={"env": "staging"})).required
    decision = policy.decide(incident(severity=Severity.LOW, labels={"env": "prod"}))
    assert decision.required
    assert decision.reason.startswith("no rule matched severity low, so otherwise: required")


def test_business_days_skip_the_weekend() -> None:
    policy = parse_policy(CHOSEN_SERVICES)
    assert policy.decide(incident(severity=Severity.CRITICAL)).due_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    high = policy.decide(incident(severity=Severity.HIGH))
    assert high.due_at == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # Friday + 5 business days = next Friday
    assert "within 5 business days" in high.reason
    medium = policy.decide(incident(severity=Severity.MEDIUM, service="checkout"))
    assert medium.due_at == datetime(2026, 12, 11, 10, 0, tzinfo=UTC)  # default_days: 10 business days


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (datetime(2026, 11, 27, 10, 0, tzinfo=UTC), 0, datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 27, 10, 0, tzinfo=UTC), 1, datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),  # Fri -> Mon
        (datetime(2026, 11, 28, 23, 0, tzinfo=UTC), 1, datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),  # Sat -> Mon
        (datetime(2026, 11, 29, 8, 0, tzinfo=UTC), 5, datetime(2026, 12, 4, 8, 0, tzinfo=UTC)),  # Sun -> Fri
        (datetime(2026, 11, 30, 8, 0, tzinfo=UTC), 10, datetime(2026, 12, 14, 8, 0, tzinfo=UTC)),  # two weeks
    ],
)
def test_add_business_days(start: datetime, days: int, due: datetime) -> None:
    assert add_business_days(start, days) == due


def test_owner_by_service_then_team_then_default() -> None:
    policy = parse_policy(CHOSEN_SERVICES)
    critical = Severity.CRITICAL
    assert policy.decide(incident(severity=critical, service="Payments-API", team="fulfilment")).owner == "alice"
    assert policy.decide(incident(severity=critical, service="search", team="fulfilment")).owner == "erin"
    assert policy.decide(incident(severity=critical, service=None, team=None)).owner == "incident-manager"
    assert policy.decide(incident(severity=Severity.LOW, service="search", team="x")).owner is None  # no review


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "rules:\n  - {name: a, when: {severity: [urgent]}, review: required}",
            "rules.0.when.severity.0: Input should be",
        ),
        ("rules:\n  - {name: a, when: {priority: high}, review: required}", "rules.0.when.priority: Extra inputs"),
        ("rules:\n  - {name: a, review: maybe}", "rules.0.review: Input should be 'required' or 'not_required'"),
        ("rules:\n  - {name: a, review: required}\n  - {name: a, review: required}", "repeated: a"),
        ("due: {count: lunar}", "due.count: Input should be 'calendar' or 'business'"),
        ("due: {days: {critical: -1}}", "due.days.critical: Input should be greater than or equal to 0"),
        ("required_sections: [owner, lessons]", "required_sections.1: Input should be 'owner'"),
        ("owners: {by_servce: {}}", "owners.by_servce: Extra inputs are not permitted"),
        ("version: 2", "version: Input should be 1"),
        (
            "verification: {measurable_required_for: [severe]}",
            "verification.measurable_required_for.0: Input should be",
        ),
        ("verification: {new_action_item: true}", "verification.new_action_item: Extra inputs are not permitted"),
        (
            "verification: {new_action_item_when_not_effective: maybe}",
            "verification.new_action_item_when_not_effective",
        ),
        ("otherwise: sometimes", "otherwise: Input should be"),
        ("rules: [\n", "not valid YAML"),
        ("", "expected a mapping"),
        ("- a\n- b", "expected a mapping"),
    ],
)
def test_a_bad_file_is_refused_with_the_field_named(text: str, named: str) -> None:
    with pytest.raises(PolicyError, match=r"^my-policy\.yaml: ") as refused:
        parse_policy(text, source="my-policy.yaml")
    assert named in str(refused.value)


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot read the review policy file"):
        load_policy(missing)


def test_measurable_verification_is_required_by_severity_and_can_be_turned_off() -> None:
    critical, high = incident("C", severity=Severity.CRITICAL), incident("H", severity=Severity.HIGH)
    assert ReviewPolicy().decide(critical).measurable_verification_required
    assert not ReviewPolicy().decide(high).measurable_verification_required
    chosen = parse_policy("verification: {measurable_required_for: high}")
    assert chosen.decide(high).measurable_verification_required
    assert not chosen.decide(critical).measurable_verification_required
    off = parse_policy("verification: {measurable_required_for: [], new_action_item_when_not_effective: false}")
    assert not off.decide(critical).measurable_verification_required
    assert not off.verification.new_action_item_when_not_effective
