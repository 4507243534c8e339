"""Review consuming ``followups.events`` over real Kafka and the MongoDB-compatible server: verdicts recorded once,
reopening announced through the outbox, the follow-up view, the manual verdict API, the approval policy, the DLQ."""

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import (
    ActionItemUpdated,
    Escalated,
    ReminderDue,
    ReviewStatusChanged,
    Severity,
    Verdict,
    VerificationRecorded,
    followup_event_id,
    review_event_adapter,
)
from services.review.domain.record import Review, review_id_for
from services.review.domain.verification import Recorded
from services.review.followup_views import WRITE_ATTEMPTS, FollowupViews
from tests.conftest import Servers
from tests.integration.review.conftest import (
    ADMIN,
    EDITOR,
    OTHER_EDITOR,
    VIEWER,
    ReviewApp,
    bearer,
    incident,
)
from tests.support.kafka import committed_offsets, produce, produce_many, read_to_end, read_topic
from tests.support.verification import METRIC_CHECK, remediation_verified
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MakeApp = Callable[..., Any]
Record = tuple[bytes, bytes | None, Mapping[str, str]]
LATER = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
SECTIONS = {
    "owner": "alice",
    "analysis": {"what_went_wrong": ["Retries were not throttled"]},
    "contributing_factors": [{"category": "technology", "description": "No backoff"}],
    "recommendations": ["Add backoff to the order worker"],
}


async def write(app: ReviewApp, method: str, path: str, body: dict[str, Any], token: str = EDITOR) -> Any:
    answer = await app.http.request(method, path, json=body, headers=bearer(token))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def published(app: ReviewApp, incident_id: str, verification: dict[str, Any] = METRIC_CHECK, **facts: Any) -> str:
    """A critical review taken through the API to published, with AI-1 (owner erin, ``verification``) done."""
    review = await app.open(incident(incident_id, **facts))
    url = f"/reviews/{review.id}"
    await write(app, "PATCH", url, {**SECTIONS, "version": 1})
    item = {"title": "Add backoff", "owner": "erin", "verification": verification, "version": 2}
    await write(app, "POST", f"{url}/action-items", item)
    await write(app, "PATCH", f"{url}/action-items/AI-1", {"status": "done", "version": 3})
    for version, to in enumerate(("in_review", "approved", "published"), start=4):
        await write(app, "POST", f"{url}/transitions", {"to": to, "version": version})
    return review.id


async def stored(app: ReviewApp, review_id: str) -> Review:
    review = await app.repository.get(review_id)
    assert review is not None
    return review


def verdicts_of(records: list[Any]) -> list[VerificationRecorded]:
    events = [review_event_adapter.validate_json(record.value) for record in records]
    return [event for event in events if isinstance(event, VerificationRecorded)]


async def test_a_verdict_delivered_twice_is_recorded_once_and_an_older_attempt_is_ignored(
    make_review_app: MakeApp, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        review_id = await published(app, "VER-1")
        key = review_id.encode()
        first = remediation_verified(review_id, "generic:VER-1", verdict=Verdict.INCONCLUSIVE, attempt=1)
        second = remediation_verified(review_id, "generic:VER-1", verdict=Verdict.EFFECTIVE, attempt=2)
        topic = app.settings.followups_topic
        # The same event twice, then the older attempt late: one verdict, attempt 2.
        records: list[Record] = [
            (event.model_dump_json().encode(), key, {}) for event in (first, second, second, first)
        ]
        await produce_many(servers.kafka_bootstrap, topic, records)

        async def consumed() -> int:
            return await committed_offsets(servers.kafka_bootstrap, app.settings.followups_group_id, topic)

        await eventually(consumed, lambda offsets: offsets == len(records))  # committed after the effects
        shown = (await app.http.get(f"/reviews/{review_id}/followup")).json()
        item = (await stored(app, review_id)).action_items[0]
        await eventually(app.repository.pending_count, lambda pending: pending == 0)
        events = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

    assert item.verification_result is not None
    assert (item.verification_result.verdict, item.verification_result.attempt) == (Verdict.EFFECTIVE, 2)
    assert item.verification_result.event_id == str(second.event_id)
    assert [(attempt["attempt"], attempt["verdict"]) for attempt in shown["verification_attempts"]] == [
        (1, "inconclusive"),
        (2, "effective"),
    ]
    assert shown["awaiting_verification"] == []
    announced = verdicts_of(events)
    assert [(event.verdict, event.reopened) for event in announced] == [
        (Verdict.INCONCLUSIVE, False),
        (Verdict.EFFECTIVE, False),
    ]
    assert len(events) == 9  # 7 for the review's way to published, 2 verdicts: no duplicate announced


async def test_not_effective_reopens_a_closed_review_and_the_outbox_announces_it(
    make_review_app: MakeApp, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        review_id = await published(app, "VER-2")
        url = f"/reviews/{review_id}"
        await write(app, "POST", f"{url}/transitions", {"to": "closed", "version": 7})
        event = remediation_verified(review_id, "generic:VER-2", verdict=Verdict.NOT_EFFECTIVE)
        await produce(servers.kafka_bootstrap, app.settings.followups_topic, event.model_dump_json().encode(), key=b"x")
        reopened = await eventually(lambda: stored(app, review_id), lambda review: review.version == 9)
        await eventually(app.repository.pending_count, lambda pending: pending == 0)
        records = await read_to_end(servers.kafka_bootstrap, app.settings.events_topic)

        refused = await app.http.post(f"{url}/transitions", json={"to": "closed", "version": 9}, headers=bearer(EDITOR))
        item = {"title": "Cap retries per order", "status": "done", "verification": METRIC_CHECK, "version": 9}
        await write(app, "POST", f"{url}/action-items", item)
        closed_again = await write(app, "POST", f"{url}/transitions", {"to": "closed", "version": 10})

    assert reopened.status == "published"
    assert reopened.reopening is not None
    assert reopened.reopening.action_item_ids == ["AI-1"]
    events = [review_event_adapter.validate_json(record.value) for record in records]
    verdict, moved = events[-2:]
    assert isinstance(verdict, VerificationRecorded)
    assert (verdict.verdict, verdict.reopened, verdict.version) == (Verdict.NOT_EFFECTIVE, True, 9)
    assert verdict.evidence.observed == 9.5
    assert isinstance(moved, ReviewStatusChanged)
    assert (moved.from_status, moved.to_status, moved.version) == ("closed", "published", 9)
    assert refused.status_code == 409
    assert "the lesson was reopened (AI-1 was verified not effective)" in refused.json()["detail"]
    assert closed_again["status"] == "closed"
    assert closed_again["reopening"]["settled_at"] is not None


async def test_a_poison_record_goes_to_the_dlq_and_the_partition_moves_on(
    make_review_app: MakeApp, servers: Servers
) -> None:
    async with make_review_app(with_kafka=True) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("VER-3"))
        key = review.id.encode()
        reminder = ReminderDue(
            event_id=followup_event_id("reminder-1"),
            occurred_at=review.created_at,
            review_id=review.id,
            timer_id="reminder-1",
            incident_key=review.incident_key,
            title=review.incident.title,
            severity=Severity.CRITICAL,
            owner="alice",
            subject="review",
            due_at=review.due_at or review.created_at,
            before_seconds=86_400,
        )
        unknown_review = remediation_verified(review_id_for("generic:nobody"), "generic:nobody")
        escalated = Escalated(
            **{
                **reminder.model_dump(exclude={"type", "subject", "before_seconds"}),
                "event_id": followup_event_id("e"),
            },
            subject="review",
            level=1,
            target="team_lead",
            overdue_seconds=3_600,
        )
        records: list[Record] = [
            (b"{not json", key, {}),
            (b'{"type": "ReminderDue", "schema_version": 1}', key, {}),
            (unknown_review.model_dump_json().encode(), key, {}),
            (reminder.model_dump_json().encode(), key, {}),
            (escalated.model_dump_json().encode(), key, {}),
        ]
        await produce_many(servers.kafka_bootstrap, app.settings.followups_topic, records)
        dead = await read_topic(servers.kafka_bootstrap, app.settings.followups_dlq_topic, expect=3)

        async def view() -> Any:
            return (await app.http.get(f"/reviews/{review.id}/followup", headers=bearer(VIEWER))).json()

        shown = await eventually(view, lambda body: body["escalation_level"] == 1)

    reasons = [record.headers["dlq-reason"] for record in dead]
    assert reasons[0].startswith("not a valid follow-up event")
    assert reasons[1].startswith("not a valid follow-up event")
    assert f"no review {unknown_review.review_id}" in reasons[2]
    assert [record.value for record in dead][:2] == [b"{not json", b'{"type": "ReminderDue", "schema_version": 1}']
    assert [reminder["owner"] for reminder in shown["reminders"]] == ["alice"]
    assert (shown["escalation_level"], shown["escalation_target"]) == (1, "team_lead")


async def test_the_follow_up_view_needs_the_viewer_role_like_a_review(make_review_app: MakeApp) -> None:
    async with make_review_app(anonymous_reads=False) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("VER-4"))
        url = f"/reviews/{review.id}/followup"
        anonymous = await app.http.get(url)
        read = await app.http.get(url, headers=bearer(VIEWER))
        unknown = await app.http.get("/reviews/nope/followup", headers=bearer(VIEWER))
        spec = (await app.http.get("/openapi.json")).json()

    assert anonymous.status_code == 401
    assert read.status_code == 200
    assert read.json()["review_id"] == review.id
    assert (read.json()["reminders"], read.json()["escalation_level"]) == ([], 0)
    assert unknown.status_code == 404
    assert "/reviews/{review_id}/followup" in spec["paths"]
    assert "/reviews/{review_id}/action-items/{item_id}/verdict" in spec["paths"]


async def test_a_manual_verdict_is_recorded_by_the_verifier_never_by_the_owner(make_review_app: MakeApp) -> None:
    async with make_review_app(with_kafka=False) as review_app:
        app: ReviewApp = review_app
        manual = {"method": "manual", "verifier": "eve"}
        review_id = await published(app, "VER-5", verification=METRIC_CHECK)
        url = f"/reviews/{review_id}/action-items/AI-1"
        verdict = {"verdict": "not_effective", "evidence": "Retries doubled in the load test"}

        measurable = await app.http.post(f"{url}/verdict", json={**verdict, "version": 7}, headers=bearer(ADMIN))
        await write(app, "PATCH", url, {"verification": manual, "version": 7})
        by_viewer = await app.http.post(f"{url}/verdict", json={**verdict, "version": 8}, headers=bearer(VIEWER))
        by_owner = await app.http.post(f"{url}/verdict", json={**verdict, "version": 8}, headers=bearer(EDITOR))
        no_version = await app.http.post(f"{url}/verdict", json=verdict, headers=bearer(OTHER_EDITOR))
        stale = await app.http.post(f"{url}/verdict", json={**verdict, "version": 7}, headers=bearer(OTHER_EDITOR))
        bad_link = {**verdict, "links": ["javascript:alert(1)"], "version": 8}
        refused_link = await app.http.post(f"{url}/verdict", json=bad_link, headers=bearer(OTHER_EDITOR))
        by_verifier = await app.http.post(
            f"{url}/verdict",
            json={**verdict, "links": ["https://grafana.example/d/retries"], "version": 8},
            headers=bearer(OTHER_EDITOR),
        )
        events = await app.events(review_id)

    assert measurable.status_code == 409
    assert measurable.json()["code"] == "verification_refused"
    assert by_viewer.status_code == 403
    assert by_owner.status_code == 403
    assert by_owner.json()["code"] == "not_the_verifier"
    assert no_version.status_code == 428
    assert stale.status_code == 409
    assert stale.json()["code"] == "stale_version"
    assert refused_link.status_code == 422
    assert by_verifier.status_code == 200, by_verifier.text
    assert by_verifier.headers["etag"] == '"9"'
    result = by_verifier.json()["action_items"][0]["verification_result"]
    assert (result["verdict"], result["recorded_by"], result["evidence"]["links"]) == (
        "not_effective",
        "eve",
        ["https://grafana.example/d/retries"],
    )
    assert by_verifier.json()["reopening"]["action_item_ids"] == ["AI-1"]
    assert isinstance(events[-1], VerificationRecorded)
    assert (events[-1].reopened, events[-1].evidence.judged_by) == (True, "eve")


async def test_approval_of_a_critical_review_is_refused_naming_the_items_without_a_measurable_check(
    make_review_app: MakeApp,
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("VER-6"))
        url = f"/reviews/{review.id}"
        await write(app, "PATCH", url, {**SECTIONS, "version": 1})
        manual = {"title": "Runbook", "verification": {"method": "manual"}, "version": 2}
        await write(app, "POST", f"{url}/action-items", manual)
        await write(app, "POST", f"{url}/action-items", {"title": "Dashboards", "version": 3})
        await write(app, "POST", f"{url}/transitions", {"to": "in_review", "version": 4})
        refused = await app.http.post(
            f"{url}/transitions", json={"to": "approved", "version": 5}, headers=bearer(EDITOR)
        )
        await write(app, "PATCH", f"{url}/action-items/AI-2", {"verification": METRIC_CHECK, "version": 5})
        approved = await write(app, "POST", f"{url}/transitions", {"to": "approved", "version": 6})
        added = [event for event in await app.events(review.id) if isinstance(event, ActionItemUpdated)]

    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "cannot approve: the policy requires at least one measurable verification (metric, alert or recurrence) for "
        "critical incidents; these action items have none: AI-1, AI-2"
    )
    assert approved["status"] == "approved"
    assert added[-1].verification is not None
    assert added[-1].verification.query == METRIC_CHECK["query"]


async def test_a_recurrence_counts_against_items_verified_effective(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review_id = await published(app, "VER-7", fingerprint="orders-retry-storm")
        outcome = await app.service.record_remediation_verdict(remediation_verified(review_id, "generic:VER-7"))
        assert isinstance(outcome, Recorded)
        again = await app.open(incident("VER-8", fingerprint="orders-retry-storm", resolved_at=LATER))
        earlier = await stored(app, review_id)
        events = await app.events(review_id)

    mark = earlier.action_items[0].recurred_after_verification
    assert mark is not None
    assert (mark.review_id, mark.incident_key) == (again.id, "generic:VER-8")
    assert earlier.action_items[0].verification_result is not None  # the verdict stays, the mark counts against it
    marked = [event for event in events if isinstance(event, ActionItemUpdated) and event.version == earlier.version]
    assert [(event.action_item_id, event.changed) for event in marked] == [("AI-1", ("recurred_after_verification",))]


CONCURRENT_EVENTS = 5


async def test_concurrent_writers_to_one_view_lose_no_event(make_review_app: MakeApp) -> None:
    assert CONCURRENT_EVENTS < WRITE_ATTEMPTS
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        views = FollowupViews(app.db)
        review = await app.open(incident("VER-9"))
        reminders = [
            ReminderDue(
                event_id=followup_event_id(f"reminder-{n}"),
                occurred_at=review.created_at,
                review_id=review.id,
                timer_id=f"reminder-{n}",
                incident_key=review.incident_key,
                title=review.incident.title,
                severity=Severity.CRITICAL,
                subject="review",
                due_at=review.created_at,
                before_seconds=3_600 + n,
            )
            # A writer loses at most once per other event written first: fewer than WRITE_ATTEMPTS events, so all land.
            for n in range(CONCURRENT_EVENTS)
        ]
        applied = await asyncio.gather(*(views.apply(event, app.clock) for event in [*reminders, *reminders]))
        view = await views.get(review.id)

    assert view is not None
    expected = [3_600 + n for n in range(CONCURRENT_EVENTS)]
    assert sorted(reminder.before_seconds for reminder in view.reminders) == expected
    assert view.version == CONCURRENT_EVENTS
    assert sorted(applied) == [False] * CONCURRENT_EVENTS + [True] * CONCURRENT_EVENTS  # each applied once, copies seen
