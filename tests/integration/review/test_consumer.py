"""From ``incidents.closed`` to a review and its announcement, over real Kafka: the policy, duplicates, the DLQ,
and recurrence."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import ReviewOpened, ReviewRecurred, ReviewUpdated, Severity, review_event_adapter
from services.review.domain.record import review_id_for
from tests.conftest import Servers
from tests.integration.review.conftest import EDITOR, ReviewApp, bearer, incident, wait_until_announced
from tests.support.fixtures import FIXTURES
from tests.support.kafka import produce, read_to_end, read_topic

pytestmark = pytest.mark.integration


async def test_duplicates_make_one_review_and_one_event_and_garbage_goes_to_dlq(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        closed = incident("INC-42")
        body, key = closed.model_dump_json().encode(), closed.incident_key.encode()
        # A time with no UTC form: must not stop the partition (it is not a ValidationError in schemas' models).
        out_of_range = json.dumps(
            {**closed.model_dump(mode="json"), "started_at": None, "resolved_at": "0001-01-01T00:00:00+00:01"}
        ).encode()
        for value in (body, b'{"schema_version": 1}', out_of_range, body):
            await produce(servers.kafka_bootstrap, app.settings.closed_topic, value, key=key)
        await wait_until_announced(app, servers.kafka_bootstrap)
        events = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)
        dead = await read_to_end(servers.kafka_bootstrap, app.settings.dlq_topic)
        reviews = await app.db.reviews.find({}).to_list()

    assert len(reviews) == 1
    review = reviews[0]
    assert (review["incident_key"], review["status"], review["version"]) == ("generic:INC-42", "open", 1)
    assert review["due_at"] == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # critical: 5 days after resolution
    assert review["policy_rule"] == "critical-high-medium"
    assert review["title_key"] == "payments api returning #s"
    assert len(events) == 1
    opened = ReviewOpened.model_validate_json(events[0].value)
    assert (opened.review_id, events[0].key) == (review["_id"], review["_id"].encode())
    assert events[0].headers["event-id"] == str(opened.event_id)
    assert len(dead) == 2
    assert all(record.headers["dlq-reason"].startswith("not a valid IncidentClosed v1") for record in dead)
    assert "out of range" in dead[1].headers["dlq-reason"]


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_the_policy_file_decides_which_incidents_get_a_review(make_review_app: Any, servers: Servers) -> None:
    policy_file = FIXTURES / "review" / "policy_chosen_services.yaml"
    async with make_review_app(with_kafka=True, policy_file=policy_file) as review_app:
        app: ReviewApp = review_app
        incidents = {
            "medium-checkout": incident("P-1", Severity.MEDIUM, service="checkout", team="payments"),
            "medium-search": incident(
                "P-2", Severity.MEDIUM, service="search", team="discovery", title="Empty results"
            ),
            "high-search": incident("P-3", Severity.HIGH, service="search", team="payments", title="Index stale"),
            "low": incident("P-4", Severity.LOW),
        }
        for closed in incidents.values():
            await produce(servers.kafka_bootstrap, app.settings.closed_topic, closed.model_dump_json().encode())
        events = await read_topic(servers.kafka_bootstrap, app.settings.events_topic, expect=4)
        stored = {doc["incident_key"]: doc for doc in await app.db.reviews.find({}).to_list()}
        metrics = (await app.http.get("/metrics")).text

    def review(name: str) -> dict[str, Any]:
        return stored[incidents[name].incident_key]

    assert review("medium-checkout")["status"] == "open"
    assert review("medium-checkout")["policy_rule"] == "medium-on-money-paths"
    assert review("medium-checkout")["owner"] == "alice"  # by service
    # Resolved Friday 2026-11-27 10:00; 10 business days later is Friday 2026-12-11.
    assert review("medium-checkout")["due_at"] == datetime(2026, 12, 11, 10, 0, tzinfo=UTC)
    assert review("medium-checkout")["required_sections"] == ["owner", "analysis.what_went_wrong"]
    assert review("medium-search")["status"] == "not_required"
    assert review("medium-search")["policy_reason"] == (
        "no rule matched severity medium, so otherwise: not_required: no review needed"
    )
    assert review("high-search")["owner"] == "bob"  # by team
    assert review("high-search")["due_at"] == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # 5 business days
    assert review("low")["status"] == "not_required"
    opened = [ReviewOpened.model_validate_json(event.value) for event in events]
    assert sorted((event.incident_key, event.status) for event in opened) == sorted(
        (doc["incident_key"], doc["status"]) for doc in stored.values()
    )
    decisions = _samples(metrics, "lessons_review_policy_decisions_total")
    assert decisions[(("rule", "otherwise"), ("status", "not_required"))] == 2
    assert decisions[(("rule", "medium-on-money-paths"), ("status", "open"))] == 1
    assert decisions[(("rule", "critical-and-high"), ("status", "open"))] == 1


async def test_a_recurrence_after_remediation_is_linked_flagged_and_announced(
    make_review_app: Any, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        earlier = await app.open(incident("REC-1", fingerprint="pool-exhausted", service="payments-api"))
        url = f"/reviews/{earlier.id}"
        item = {"title": "Raise the pool limit", "version": 1}
        assert (await app.http.post(f"{url}/action-items", json=item, headers=bearer(EDITOR))).status_code == 201
        done = {"status": "done", "version": 2}
        assert (await app.http.patch(f"{url}/action-items/AI-1", json=done, headers=bearer(EDITOR))).status_code == 200

        again = incident(
            "REC-2",
            fingerprint="pool-exhausted",
            service="payments-api",
            resolved_at=datetime(2027, 1, 20, 10, 0, tzinfo=UTC),  # 54 days later: inside the 90-day window
        )
        await produce(servers.kafka_bootstrap, app.settings.closed_topic, again.model_dump_json().encode())
        new_id = review_id_for(again.incident_key)
        # Earlier: opened, item added, item done, then linked. New: opened, recurred.
        await wait_until_announced(app, servers.kafka_bootstrap)
        records = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)
        new = await app.repository.get(new_id)
        linked_earlier = await app.repository.get(earlier.id)
        metrics = (await app.http.get("/metrics")).text

    assert new is not None
    assert linked_earlier is not None
    assert new.related_reviews == [earlier.id]
    assert linked_earlier.related_reviews == [new_id]
    assert new.recurred_after_remediation is True
    assert new.recurrence is not None
    assert (new.recurrence.earlier_review_id, new.recurrence.matched_on) == (earlier.id, "fingerprint")
    events = [review_event_adapter.validate_json(record.value) for record in records]
    assert len(events) == 6
    recurred = [event for event in events if isinstance(event, ReviewRecurred)]
    assert len(recurred) == 1
    assert (recurred[0].review_id, recurred[0].earlier_review_id) == (new_id, earlier.id)
    assert recurred[0].recurred_after_remediation is True
    link = [event for event in events if isinstance(event, ReviewUpdated) and event.review_id == earlier.id]
    assert [(event.changed, event.version) for event in link] == [(("related_reviews",), 4)]
    new_events = [type(event).__name__ for event in events if event.review_id == new_id]
    assert new_events == ["ReviewOpened", "ReviewRecurred"]  # in order, on the review's partition
    assert _samples(metrics, "lessons_review_recurrences_total")[(("after_remediation", "true"),)] == 1
