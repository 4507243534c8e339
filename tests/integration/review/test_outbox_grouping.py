"""One outbox entry per review a transaction changes, on the real server, and Kafka output exactly as with one entry
per event: each event its own record, with its payload, key and headers, in the review's order.

A failure in the middle of an entry leaves the entry unsent; the next pass publishes all of its events again (the
same event ids: duplicates consumers recognise). Entries written before grouping (one event at the top level) still go
out, in order, among the grouped ones.
"""

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from schemas import IncidentClosed
from services.review.domain.editing import SectionEdit
from services.review.domain.record import review_id_for
from services.review.outbox import OutboxRelay
from services.review.ports import OutboxEvent
from tests.conftest import Servers
from tests.integration.review.conftest import RESOLVED, ReviewApp, incident
from tests.support.kafka import Record, read_to_end

pytestmark = pytest.mark.integration


def recurring(prefix: str, count: int = 4) -> list[IncidentClosed]:
    """One problem recurring: each incident recurs the one before it, which the same batch opens."""
    return [
        incident(f"{prefix}-{n}", service="db", fingerprint="disk-full", resolved_at=RESOLVED + timedelta(hours=n))
        for n in range(count)
    ]


def expected_events(entries: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, str]]]:
    """Per review, (event id, event type, payload) in the order the relay must publish them: as stored."""
    by_review: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for entry in entries:  # in sending order
        for event in entry["events"]:
            by_review[entry["key"]].append((event["event_id"], event["event_type"], event["payload"]))
    return dict(by_review)


def first_appearances(records: list[Record]) -> dict[str, list[tuple[str, str, str]]]:
    """Per review, what reached the topic in offset order, each event id once (the outbox sends at least once)."""
    by_review: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for record in records:
        assert record.key is not None
        assert record.headers["content-type"] == "application/json"
        event_id = record.headers["event-id"]
        if event_id not in seen:
            seen.add(event_id)
            by_review[record.key.decode()].append((event_id, record.headers["event-type"], record.value.decode()))
    return dict(by_review)


async def test_a_batch_opening_recurring_incidents_writes_one_entry_per_review_with_its_events_in_order(
    make_review_app: Any,
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        closed = recurring("GRP")
        await app.service.open_for_incidents(closed)
        entries = await app.outbox()

    ids = [review_id_for(c.incident_key) for c in closed]
    assert sorted(entry["key"] for entry in entries) == sorted(ids)  # one entry per review, 4 instead of 10
    by_review = {entry["key"]: [(e["event_type"], e["version"]) for e in entry["events"]] for entry in entries}
    assert by_review == {
        ids[0]: [("ReviewOpened", 1), ("ReviewUpdated", 2)],
        ids[1]: [("ReviewOpened", 1), ("ReviewRecurred", 1), ("ReviewUpdated", 2)],
        ids[2]: [("ReviewOpened", 1), ("ReviewRecurred", 1), ("ReviewUpdated", 2)],
        ids[3]: [("ReviewOpened", 1), ("ReviewRecurred", 1)],
    }
    for entry in entries:
        assert entry["_id"] == entry["events"][0]["event_id"]
        assert entry["sent_at"] is None
        assert "payload" not in entry


async def test_the_relay_publishes_each_event_of_grouped_entries_to_kafka_in_order_with_its_headers(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True, outbox_wake_on_write=False, outbox_poll_seconds=3600) as review_app:
        app: ReviewApp = review_app
        await app.service.open_for_incidents(recurring("KGRP", count=6))
        entries = await app.outbox()
        relay: OutboxRelay = app.app.state.review_relay
        # The app's own relay makes one pass at start-up and may have sent some already: judge the topic.
        await relay.relay_once()
        assert await app.repository.pending_count() == 0
        records = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

    expected = expected_events(entries)
    assert sum(len(events) for events in expected.values()) == 6 + 5 + 5  # opened x6, recurred x5, updated x5
    assert first_appearances(records) == expected


class FailingOnce:
    """Records what it publishes; refuses the given event ids once each."""

    def __init__(self, *fail_once: str) -> None:
        self.published: list[OutboxEvent] = []
        self.fail_once = set(fail_once)

    async def __call__(self, event: OutboxEvent) -> None:
        if event.event_id in self.fail_once:
            self.fail_once.discard(event.event_id)
            raise ConnectionError("Kafka did not acknowledge")
        self.published.append(event)

    def ids_of(self, review_id: str) -> list[str]:
        return [event.event_id for event in self.published if event.key == review_id]


async def test_a_failure_in_the_middle_of_an_entry_leaves_it_unsent_and_the_next_pass_publishes_it_whole(
    make_review_app: Any,
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        closed = recurring("MID", count=3)
        await app.service.open_for_incidents(closed)
        unlucky, *others = (review_id_for(c.incident_key) for c in closed[1:] + closed[:1])
        # A later change of the same review: its own entry, which must wait behind the unsent one. (Later: the batch
        # times its openings a millisecond apart, past the test's clock.)
        app.clock.now += timedelta(seconds=1)
        await app.service.edit_sections(unlucky, 2, SectionEdit(owner="erin"), "erin")
        (grouped, later) = await app.outbox(unlucky)
        events = [event["event_id"] for event in grouped["events"]]
        assert len(events) == 3  # ReviewOpened, ReviewRecurred, ReviewUpdated
        publish = FailingOnce(events[1])
        relay = OutboxRelay(app.repository, publish, app.clock, poll_seconds=1.0, batch_size=100)

        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert publish.ids_of(unlucky) == events[:1]  # the second failed: neither the third nor the edit went out
        pending = await app.db.review_outbox.find({"sent_at": None}).sort("order", 1).to_list()
        assert [entry["_id"] for entry in pending] == [grouped["_id"], later["_id"]]
        assert all(publish.ids_of(review_id) for review_id in others)  # other reviews went on

        assert await relay.relay_once() == 3 + 1
        assert await app.repository.pending_count() == 0

    # The entry went out whole again, its first event a second time with the same id; then the edit.
    assert publish.ids_of(unlucky) == [events[0], *events, later["events"][0]["event_id"]]


async def test_entries_written_before_grouping_go_out_in_order_among_grouped_ones_with_their_headers(
    make_review_app: Any, servers: Servers
) -> None:
    """A rolling deploy: a replica of the version before wrote a review's first entries (one event each, at the top
    level; one of them before the order key existed), a new replica its next change."""
    async with make_review_app(with_kafka=True, outbox_wake_on_write=False, outbox_poll_seconds=3600) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("OLD-1"))
        await app.service.edit_sections(review.id, 1, SectionEdit(owner="erin"), "erin")
        written = await app.outbox(review.id)
        old_shape = [
            {
                key: value
                for key, value in {**entry, **entry["events"][0], "_id": entry["events"][0]["event_id"]}.items()
                if key not in {"events", "event_id"} and not (number == 0 and key == "order")
            }
            for number, entry in enumerate(written)
        ]
        assert "order" not in old_shape[0]
        assert {"event_type", "payload"} <= old_shape[1].keys()
        await app.db.review_outbox.delete_many({"key": review.id})
        await app.db.review_outbox.insert_many(old_shape)
        await app.service.edit_sections(review.id, 2, SectionEdit(owner="frank"), "erin")
        (grouped,) = [entry for entry in await app.outbox(review.id) if "events" in entry]

        relay: OutboxRelay = app.app.state.review_relay
        await relay.relay_once()
        assert await app.repository.pending_count() == 0
        records = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

    expected = [(entry["_id"], entry["event_type"], entry["payload"]) for entry in old_shape]
    expected += [(e["event_id"], e["event_type"], e["payload"]) for e in grouped["events"]]
    assert [event_type for _, event_type, _ in expected] == ["ReviewOpened", "ReviewUpdated", "ReviewUpdated"]
    assert first_appearances(records) == {review.id: expected}
