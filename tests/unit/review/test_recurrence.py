"""Recurrence in the domain: what to look for, how two reviews are linked, when remediation did not hold."""

from datetime import UTC, datetime, timedelta

from schemas import ActionItemStatus
from services.review.domain.editing import ActionItemEdit, update_action_item
from services.review.domain.record import Review, event_id_for
from services.review.domain.recurrence import (
    link_recurrence,
    occurrence_order,
    recurrence_groups,
    recurrence_query,
    remediated,
)
from tests.unit.review.builders import NOW, incident, opened, with_item

LATER = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)


def done(review: Review, item_id: str) -> Review:
    change = update_action_item(review, item_id, ActionItemEdit(status=ActionItemStatus.DONE), by="a", now=NOW)
    assert change is not None
    return change[0]


def test_the_query_looks_back_over_the_window_by_fingerprint_and_service_and_title() -> None:
    review = opened(incident("B", fingerprint="orders-stuck", resolved_at=LATER, title="Orders stuck (x3)"))
    query = recurrence_query(review, timedelta(days=90))
    assert query is not None
    assert (query.fingerprint, query.service, query.title_key) == ("orders-stuck", "orders", "orders stuck x#")
    assert (query.since, query.until) == (LATER - timedelta(days=90), LATER)
    assert recurrence_query(opened(incident("C", service=None, fingerprint=None)), timedelta(days=90)) is None


def test_remediated_means_every_action_item_done_and_at_least_one() -> None:
    review = opened()
    assert not remediated(review)
    review = with_item(with_item(review), title="Second")
    assert not remediated(done(review, "AI-1"))
    assert remediated(done(done(review, "AI-1"), "AI-2"))
    wont = update_action_item(
        review, "AI-2", ActionItemEdit(status=ActionItemStatus.WONT_DO, status_reason="n/a"), by="a", now=NOW
    )
    assert wont is not None
    assert not remediated(done(wont[0], "AI-1"))  # won't do is not done


def test_linking_flags_a_recurrence_after_remediation_and_links_both_ways() -> None:
    earlier = done(with_item(opened(incident("A", fingerprint="orders-stuck"))), "AI-1")
    new = opened(incident("B", fingerprint="orders-stuck", resolved_at=LATER))
    link = link_recurrence(new, earlier, NOW)
    assert link.new.version == 1
    assert link.new.related_reviews == [earlier.id]
    assert link.new.recurred_after_remediation is True
    assert link.new.recurrence is not None
    assert link.new.recurrence.matched_on == "fingerprint"
    assert link.earlier.related_reviews == [new.id]
    assert link.earlier.version == earlier.version + 1
    assert link.recurred.event_id == event_id_for(new.id, "recurred", 1)
    assert (link.recurred.earlier_review_id, link.recurred.recurred_after_remediation) == (earlier.id, True)
    assert (link.earlier_updated.changed, link.earlier_updated.version) == (("related_reviews",), earlier.version + 1)


def test_a_title_match_without_remediation_links_but_does_not_flag() -> None:
    earlier = with_item(opened(incident("A")))
    new = opened(incident("B", resolved_at=LATER, title="ORDERS stuck in pending!"))
    link = link_recurrence(new, earlier, NOW)
    assert link.new.recurrence is not None
    assert link.new.recurrence.matched_on == "service_and_title"
    assert link.new.recurred_after_remediation is False
    assert link.recurred.recurred_after_remediation is False


def test_groups_are_matched_fingerprint_first_and_their_keys_never_collide() -> None:
    review = opened(incident("B", fingerprint="orders-stuck", title="Orders stuck (x3)"))
    groups = recurrence_groups(review)
    assert [group.matched_on for group in groups] == ["fingerprint", "service_and_title"]
    assert len({group.key for group in groups}) == 2
    assert recurrence_groups(opened(incident("C", service=None, fingerprint=None))) == ()
    # A fingerprint that looks like a service and title names another group.
    lookalike = opened(incident("D", fingerprint='orders", "orders stuck x#', service=None))
    assert {group.key for group in recurrence_groups(lookalike)}.isdisjoint(group.key for group in groups)


def test_the_later_occurrence_is_resolved_later_then_opened_later_then_has_the_greater_id() -> None:
    early, late = NOW, NOW + timedelta(seconds=1)
    assert occurrence_order(late, early, "a") > occurrence_order(early, late, "b")
    assert occurrence_order(early, late, "a") > occurrence_order(early, early, "b")
    assert occurrence_order(early, early, "b") > occurrence_order(early, early, "a")
    # Compared as stored (milliseconds): a microsecond apart is a tie, decided by the id.
    assert occurrence_order(early + timedelta(microseconds=10), early, "a") < occurrence_order(early, early, "b")
