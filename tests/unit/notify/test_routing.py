"""The routing file is validated whole, and each notice reaches the right people for a stated reason."""

import pytest

from schemas import ReviewStatus
from services.notify.domain.notices import facts_after, followup_notice, review_notice
from services.notify.domain.routing import RoutingError, deliveries, parse_routing, recipients
from tests.unit.notify.builders import (
    EXAMPLE_ROUTING,
    ROUTING_YAML,
    escalated,
    item_added,
    notice_of,
    opened,
    overdue,
    published,
    remediation,
    reminder,
    routing,
)


def test_the_example_file_is_valid() -> None:
    parsed = parse_routing(EXAMPLE_ROUTING.read_text(), source=str(EXAMPLE_ROUTING))
    assert "alice" in parsed.people
    assert parsed.people["alice"].digest is not None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("people:\n  x: {email: x@example.org, time_zone: Mars/Olympus}", "unknown time zone"),
        ("people:\n  x: {email: x@example.org, favourite: tea}", "people.x.favourite"),
        ("people:\n  x: {email: 'x@example.org\\nBcc: all@example.org'}", "people.x.email"),
        ("people:\n  x: {}", "email address or a chat address"),
        ("people:\n  x: {email: x@example.org, digest: PT7M}", "digest period"),
        ("people:\n  x: {email: x@example.org, quiet_hours: {start: '22:00', end: '22:00'}}", "different start"),
        ("subscriptions:\n  - {person: nobody}", "no person 'nobody'"),
        ("subscriptions:\n  - {channel: nowhere}", "no chat destination 'nowhere'"),
        ("subscriptions:\n  - {person: x, channel: y}", "exactly one of person or channel"),
        ("subscriptions:\n  - {events: [Reminder]}", "subscriptions.0.events"),
        ("teams:\n  t: {roles: {team_lead: ghost}}", "teams.t.roles.team_lead"),
        ("- just a list", "expected a mapping"),
        ("people: [", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(change: str, named: str) -> None:
    with pytest.raises(RoutingError) as refused:
        parse_routing(change, source="routing.yaml")
    assert "routing.yaml" in str(refused.value)
    assert named in str(refused.value)


def test_two_people_cannot_share_a_name() -> None:
    with pytest.raises(RoutingError, match="also"):
        parse_routing("people:\n  a: {email: a@example.org, aliases: [b]}\n  b: {email: b@example.org}")


def test_a_reminder_goes_to_the_owner_by_email_and_chat_saying_why() -> None:
    found = deliveries(routing(), notice_of(reminder("Alice.Example")))
    assert [(d.recipient, d.channel) for d in found] == [("person:alice", "email"), ("person:alice", "chat")]
    assert found[0].reason == "You are this action item's owner."


def test_a_review_reminder_names_the_facilitator() -> None:
    (found,) = recipients(routing(), notice_of(reminder("alice", item=False)))
    assert found.reason == "You are this review's facilitator (its owner)."


def test_an_owner_not_in_the_file_is_told_to_the_team_channel_and_nobody_else() -> None:
    found = recipients(routing(), notice_of(reminder("zed@elsewhere.example")))
    assert [r.key for r in found] == ["channel:payments-chat"]
    assert "zed@elsewhere.example" in found[0].reason
    assert "not in notify's routing file" in found[0].reason
    assert recipients(routing(), notice_of(reminder("zed", team=None))) == []


def test_an_unowned_item_goes_to_the_team_channel() -> None:
    (found,) = recipients(routing(), notice_of(reminder(None)))
    assert found.key == "channel:payments-chat"
    assert "has no owner" in found.reason


@pytest.mark.parametrize(
    ("target", "team", "expected"),
    [
        ("team_lead", "payments", ["person:lead"]),  # the team's own role
        ("management", "payments", ["person:carol"]),  # the global role
        ("bob", "payments", ["person:bob"]),  # a person's name
        ("cto", "payments", ["channel:payments-chat"]),  # nobody: the team channel, saying so
        ("cto", None, []),
    ],
)
def test_an_escalation_goes_to_the_target_the_event_names(target: str, team: str | None, expected: list[str]) -> None:
    found = recipients(routing(), notice_of(escalated(target, team)))
    assert [r.key for r in found] == expected
    assert all("Escalation level 1" in r.reason for r in found)


def test_a_remediation_verdict_goes_to_the_verifier_else_the_owner() -> None:
    (to_verifier,) = recipients(routing(), followup_notice(remediation("carol"), None))
    assert (to_verifier.key, to_verifier.reason) == ("person:carol", "You are this remediation's verifier.")
    found = recipients(routing(), followup_notice(remediation(None), None))
    assert found[0].key == "person:alice"
    assert "names no verifier" in found[0].reason


def test_a_published_postmortem_goes_to_participants_and_subscribers() -> None:
    facts = facts_after(None, opened())
    facts = facts_after(facts, item_added(owner="bob", verifier="Alice.Example"))
    facts = facts_after(facts, published(changed_by="carol"))
    assert facts is not None
    assert facts.participants == ("alice", "bob", "Alice.Example", "carol")
    notice = review_notice(published(changed_by="carol"), facts)
    assert notice is not None
    assert notice.kind == "ReviewPublished"
    assert notice.service == "checkout"
    found = {r.key: r.reason for r in recipients(routing(), notice)}
    assert found == {
        "person:alice": "You took part in this review.",
        "person:bob": "You took part in this review.",
        "person:carol": "You took part in this review.",
        "channel:leaders": "This channel subscribed to ReviewPublished (severity critical).",
    }


def test_subscriptions_filter_on_severity_team_and_service() -> None:
    text = ROUTING_YAML.replace(
        "    events: ReviewPublished\n    team: payments", "    events: ReviewPublished\n    service: search"
    )
    facts = facts_after(None, opened(owner=None, severity="high"))
    notice = review_notice(published(changed_by=None), facts)
    assert notice is not None
    assert recipients(routing(text), notice) == []  # high, not critical; checkout, not search
    assert [r.key for r in recipients(routing(), notice)] == ["person:carol"]


def test_an_older_or_repeated_review_event_changes_no_facts() -> None:
    facts = facts_after(None, opened())
    assert facts_after(facts, opened()) is None


def test_other_status_changes_tell_nobody() -> None:
    event = published().model_copy(update={"to_status": ReviewStatus.APPROVED})
    assert review_notice(event, facts_after(None, opened())) is None


def test_overdue_notice_for_bob() -> None:
    assert [d.key_part for d in deliveries(routing(), notice_of(overdue("bob")))] == ["person:bob/email"]
