"""A transaction's outbox entries: one per review it changes, holding that review's events in their order."""

from datetime import UTC, datetime, timedelta

from schemas import ReviewEvent
from services.review.documents import outbox_documents, outbox_entry_of
from services.review.domain.batch_opening import open_batch
from services.review.domain.outbox_order import order_key
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import open_review
from tests.unit.review.builders import RESOLVED, incident

TOPIC = "reviews.events"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def recurring_batch() -> list[tuple[ReviewEvent, int, datetime]]:
    """Three incidents of one problem opened in one batch: each recurs the one before, which is in the batch too.
    The events as the repository receives them: in order, numbered per opening, timed per opening."""
    openings = []
    for number in range(3):
        closed = incident(f"REC-{number}", resolved_at=RESOLVED + timedelta(hours=number))
        at = AT + timedelta(milliseconds=number)
        review, opened = open_review(closed, ReviewPolicy().decide(closed), at)
        openings.append((review, opened, at))
    batch = open_batch(openings, {}, timedelta(days=90))
    return [(event, seq, new.at) for new in batch.opened for seq, event in enumerate(new.events)]


def kinds(events: list[ReviewEvent] | list[dict[str, object]]) -> list[tuple[str, int]]:
    return [
        (str(event["event_type"]), int(str(event["version"])))
        if isinstance(event, dict)
        else (type(event).__name__, event.version)
        for event in events
    ]


def test_a_batch_of_recurring_incidents_writes_one_entry_per_review_with_its_events_in_order() -> None:
    written = recurring_batch()
    assert len(written) == 7  # opened, then opened + recurred + the earlier one updated, twice

    entries = outbox_documents(written, TOPIC)

    first, second, third = (event.review_id for event, seq, _ in written if seq == 0)
    assert [entry["key"] for entry in entries] == [first, second, third]
    for entry in entries:
        in_transaction = [event for event, _, _ in written if event.review_id == entry["key"]]
        assert [e["event_id"] for e in entry["events"]] == [str(event.event_id) for event in in_transaction]
        assert [e["payload"] for e in entry["events"]] == [event.model_dump_json() for event in in_transaction]
        assert kinds(entry["events"]) == kinds(in_transaction)
    assert kinds(entries[0]["events"]) == [("ReviewOpened", 1), ("ReviewUpdated", 2)]
    assert kinds(entries[1]["events"]) == [("ReviewOpened", 1), ("ReviewRecurred", 1), ("ReviewUpdated", 2)]
    assert kinds(entries[2]["events"]) == [("ReviewOpened", 1), ("ReviewRecurred", 1)]


def test_an_entry_takes_its_id_and_place_in_sending_order_from_its_first_event() -> None:
    written = recurring_batch()

    entries = outbox_documents(written, TOPIC)

    for entry in entries:
        event, seq, at = next(item for item in written if item[0].review_id == entry["key"])
        assert entry["_id"] == str(event.event_id)
        assert (entry["topic"], entry["version"], entry["seq"], entry["created_at"]) == (TOPIC, event.version, seq, at)
        assert entry["order"] == order_key(at, event.version, seq, str(event.event_id))
        assert entry["sent_at"] is None
        assert "payload" not in entry  # a relay of the version before grouping must not mistake it for one event
    # Entries sort as their first events did: the reviews in the order the batch opened them.
    assert sorted(entries, key=lambda entry: entry["order"]) == entries


def test_a_transaction_of_one_review_writes_one_entry() -> None:
    written = [(event, seq, at) for event, seq, at in recurring_batch() if seq == 0][:1]
    (entry,) = outbox_documents(written, TOPIC)
    assert len(entry["events"]) == 1
    assert outbox_documents([], TOPIC) == []


def test_an_entry_is_read_with_its_events_in_order_whatever_version_wrote_it() -> None:
    grouped = outbox_documents(recurring_batch(), TOPIC)[1]
    entry = outbox_entry_of(grouped)
    assert (entry.entry_id, entry.topic, entry.key, entry.order) == (
        grouped["_id"],
        TOPIC,
        grouped["key"],
        grouped["order"],
    )
    assert [(e.event_id, e.event_type, e.payload) for e in entry.events] == [
        (e["event_id"], e["event_type"], e["payload"]) for e in grouped["events"]
    ]
    assert {(e.topic, e.key) for e in entry.events} == {(TOPIC, grouped["key"])}

    # Written before grouping: one event at the top level, its id the entry's, maybe without an order key.
    before = {
        "_id": "event-1",
        "topic": TOPIC,
        "key": "review-1",
        "event_type": "ReviewUpdated",
        "payload": '{"type": "ReviewUpdated"}',
        "version": 3,
        "seq": 0,
        "created_at": AT,
        "sent_at": None,
    }
    old = outbox_entry_of(before)
    assert old.entry_id == "event-1"
    assert [(e.event_id, e.topic, e.key, e.event_type, e.payload) for e in old.events] == [
        ("event-1", TOPIC, "review-1", "ReviewUpdated", '{"type": "ReviewUpdated"}')
    ]
    assert old.order == order_key(AT, 3, 0, "event-1")
