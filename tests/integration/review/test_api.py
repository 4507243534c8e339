"""The review API over a real MongoDB-compatible server: auth, the workflow rules, versions, lists, export."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import ReviewStatus, Severity, TimelineEntry
from services.review.domain.policy import ReviewPolicy
from tests.integration.review.conftest import ADMIN, EDITOR, OTHER_EDITOR, VIEWER, ReviewApp, bearer, incident

pytestmark = pytest.mark.integration

MakeApp = Callable[..., Any]


def if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


async def test_writes_need_an_editor_token_and_reads_follow_the_anonymous_setting(make_review_app: MakeApp) -> None:
    async with make_review_app(anonymous_reads=False) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("AUTH-1"))
        url = f"/reviews/{review.id}"
        edit = {"owner": "erin", "version": 1}

        anonymous_write = await app.http.patch(url, json=edit)
        assert anonymous_write.status_code == 401
        assert anonymous_write.headers["www-authenticate"] == "Bearer"
        assert anonymous_write.json()["code"] == "unauthenticated"
        assert (await app.http.patch(url, json=edit, headers=bearer("not-a-token-at-all"))).status_code == 401
        assert (await app.http.patch(url, json=edit, headers={"Authorization": f"Basic {EDITOR}"})).status_code == 401
        viewer_write = await app.http.patch(url, json=edit, headers=bearer(VIEWER))
        assert viewer_write.status_code == 403
        assert viewer_write.json() == {"detail": "role viewer may not do this: editor needed", "code": "forbidden"}

        assert (await app.http.get(url)).status_code == 401  # anonymous reads are off here
        assert (await app.http.get("/reviews")).status_code == 401
        assert (await app.http.get(url, headers=bearer(VIEWER))).status_code == 200

        cancel = {"to": "cancelled", "reason": "duplicate of another incident", "version": 1}
        refused = await app.http.post(f"{url}/transitions", json=cancel, headers=bearer(EDITOR))
        assert refused.status_code == 403  # cancelling is an admin's call
        written = await app.http.patch(url, json=edit, headers=bearer(EDITOR))
        assert written.status_code == 200
        assert written.json()["updated_by"] == "erin"
        assert (await app.http.post(f"{url}/transitions", json={**cancel, "version": 2}, headers=bearer(ADMIN))).json()[
            "status"
        ] == "cancelled"
        assert [type(event).__name__ for event in await app.events(review.id)] == [
            "ReviewOpened",
            "ReviewUpdated",
            "ReviewStatusChanged",
        ]

    async with make_review_app() as review_app:  # the default: anonymous reads allowed, writes still need a token
        app = review_app
        review = await app.open(incident("AUTH-2"))
        assert (await app.http.get(f"/reviews/{review.id}")).status_code == 200
        assert (await app.http.patch(f"/reviews/{review.id}", json={"owner": "x", "version": 1})).status_code == 401


async def test_a_review_goes_through_its_workflow_and_every_step_is_announced(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("FLOW-1"))
        url = f"/reviews/{review.id}"
        editor = bearer(EDITOR)

        async def move(to: str, version: int, token: str = EDITOR, **extra: Any) -> Any:
            return await app.http.post(
                f"{url}/transitions", json={"to": to, **extra}, headers={**bearer(token), **if_match(version)}
            )

        assert (await move("in_review", 1)).json()["status"] == "in_review"
        refused = await move("approved", 2)
        assert refused.status_code == 409
        assert refused.json()["code"] == "transition_refused"
        assert refused.json()["detail"].startswith("cannot approve: there are no findings yet")

        sections = {
            "owner": "alice",
            "participants": [{"name": "Alice", "function": "operations", "role": "facilitator"}],
            "analysis": {"what_went_wrong": ["Pool limit lowered by the release"]},
            "contributing_factors": [{"category": "technology", "description": "Stale default"}],
            "recommendations": ["Canary config changes"],
        }
        patched = await app.http.patch(url, json=sections, headers={**editor, **if_match(2)})
        assert patched.status_code == 200
        assert patched.headers["etag"] == '"3"'
        # The default policy wants a measurable verification before a critical review is approved.
        check = {"method": "alert", "alert_name": "PaymentsErrorBudgetBurn", "alert_matchers": {"service": "payments"}}
        item = {
            "title": "Add canary stage",
            "priority": "high",
            "category": "process",
            "owner": "erin",
            "verification": check,
        }
        added = await app.http.post(f"{url}/action-items", json={**item, "version": 3}, headers=editor)
        assert added.status_code == 201
        assert added.json()["action_items"][0]["id"] == "AI-1"
        assert (await move("approved", 4)).status_code == 200
        assert (await app.http.patch(url, json={"owner": "bob"}, headers={**editor, **if_match(5)})).json()[
            "code"
        ] == "not_editable"
        assert (await move("published", 5)).status_code == 200

        refused = await move("closed", 6)
        assert refused.status_code == 409
        assert "action items are unfinished (AI-1)" in refused.json()["detail"]
        waiver: dict[str, Any] = {"waive_open_action_items": True, "reason": "On the Q1 roadmap"}
        assert (await move("closed", 6, **waiver)).status_code == 403  # waiving is an admin's call
        closed = await move("closed", 6, ADMIN, **waiver)
        assert closed.status_code == 200
        body = closed.json()
        assert body["status"] == "closed"
        assert body["action_items_waiver"]["reason"] == "On the Q1 roadmap"
        assert [(change["from_status"], change["to_status"]) for change in body["status_history"]] == [
            ("open", "in_review"),
            ("in_review", "approved"),
            ("approved", "published"),
            ("published", "closed"),
        ]

        events = await app.events(review.id)
        assert [(type(event).__name__, event.version) for event in events] == [
            ("ReviewOpened", 1),
            ("ReviewStatusChanged", 2),
            ("ReviewUpdated", 3),
            ("ActionItemAdded", 4),
            ("ReviewStatusChanged", 5),
            ("ReviewStatusChanged", 6),
            ("ReviewStatusChanged", 7),
        ]
        assert events[2].changed == ("analysis", "contributing_factors", "owner", "participants", "recommendations")
        assert events[-1].changed_by == "carol"
        assert len({event.event_id for event in events}) == len(events)


async def test_two_editors_racing_one_wins_the_other_gets_409_with_the_current_version(
    make_review_app: MakeApp,
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("RACE-1"))
        url = f"/reviews/{review.id}"
        first, second = await asyncio.gather(
            app.http.patch(url, json={"owner": "erin"}, headers={**bearer(EDITOR), **if_match(1)}),
            app.http.patch(url, json={"owner": "eve"}, headers={**bearer(OTHER_EDITOR), **if_match(1)}),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        winner, loser = (first, second) if first.status_code == 200 else (second, first)
        assert loser.json()["code"] == "stale_version"
        assert loser.json()["current_version"] == 2
        assert loser.headers["etag"] == '"2"'
        stored = (await app.http.get(url)).json()
        assert stored["version"] == 2
        assert stored["owner"] == winner.json()["owner"]
        assert [type(event).__name__ for event in await app.events(review.id)] == ["ReviewOpened", "ReviewUpdated"]

        # A writer who read long ago is refused the same way, whichever way it states its version.
        stale = await app.http.post(
            f"{url}/action-items", json={"title": "x", "version": 1}, headers=bearer(OTHER_EDITOR)
        )
        assert (stale.status_code, stale.json()["current_version"]) == (409, 2)
        unstated = await app.http.patch(url, json={"owner": "eve"}, headers=bearer(OTHER_EDITOR))
        assert (unstated.status_code, unstated.json()["code"]) == (428, "version_required")
        assert (await app.http.get(url)).json()["version"] == 2


async def test_the_repository_refuses_a_conditional_write_on_a_version_already_replaced(
    make_review_app: MakeApp,
) -> None:
    """The atomic check itself, without the early read: the second write made on version 1 matches nothing."""
    from services.review.domain.editing import SectionEdit, edit_sections
    from services.review.ports import StaleVersionError

    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("RACE-2"))
        mine = edit_sections(review, SectionEdit(owner="erin"), by="erin", now=app.clock())
        theirs = edit_sections(review, SectionEdit(owner="eve"), by="eve", now=app.clock())
        assert mine is not None
        assert theirs is not None
        await app.repository.save(mine[0], 1, [mine[1]], "t", app.clock())
        with pytest.raises(StaleVersionError) as stale:
            await app.repository.save(theirs[0], 1, [theirs[1]], "t", app.clock())
        assert stale.value.current_version == 2
        stored = await app.repository.get(review.id)
        assert stored is not None
        assert (stored.owner, stored.version) == ("erin", 2)
        assert len(await app.outbox(review.id)) == 2  # the refused write left no event behind


async def test_list_filters_paginates_and_counts(make_review_app: MakeApp) -> None:
    async with make_review_app(now=datetime(2026, 12, 20, 9, 0, tzinfo=UTC)) as review_app:
        app: ReviewApp = review_app
        seeds = [
            incident("L-1", Severity.CRITICAL, service="payments-api", team="payments", title="Payments (EU) down"),
            incident("L-2", Severity.HIGH, service="checkout", team="payments", title="Checkout slow"),
            incident("L-3", Severity.MEDIUM, service="search", team="discovery", title="Search empty"),
            incident("L-4", Severity.LOW, service="search", team="discovery", title="Search slow"),
            incident(
                "L-5",
                Severity.HIGH,
                service="search",
                team="discovery",
                title="Search index stale",
                resolved_at=datetime(2026, 12, 18, 10, 0, tzinfo=UTC),
            ),
        ]
        reviews = {}
        for position, seed in enumerate(seeds):
            app.clock.now = datetime(2026, 12, 1, 9, position, tzinfo=UTC)  # created in this order
            reviews[seed.source_incident_id] = await app.open(seed)
        app.clock.now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
        move = {"to": "in_review", "version": 1}
        moved = await app.http.post(f"/reviews/{reviews['L-2'].id}/transitions", json=move, headers=bearer(EDITOR))
        assert moved.status_code == 200

        async def keys(**params: Any) -> list[str]:
            answer = await app.http.get("/reviews", params=params)
            assert answer.status_code == 200, answer.text
            return [review["incident_key"].removeprefix("generic:") for review in answer.json()]

        assert await keys() == ["L-5", "L-4", "L-3", "L-2", "L-1"]
        assert await keys(status="open") == ["L-5", "L-3", "L-1"]
        assert await keys(status=["in_review", "not_required"]) == ["L-4", "L-2"]
        assert await keys(severity=["high", "critical"]) == ["L-5", "L-2", "L-1"]
        assert await keys(service="search") == ["L-5", "L-4", "L-3"]
        assert await keys(team="payments", severity="high") == ["L-2"]
        # On 2026-12-20: critical due 12-02, high 12-04, medium 12-11 are past; L-5 (high, due 12-25) is not.
        assert await keys(overdue="true") == ["L-3", "L-2", "L-1"]
        assert await keys(overdue="false") == ["L-5", "L-4"]
        assert await keys(q="search") == ["L-5", "L-4", "L-3"]
        assert await keys(q="(eu)") == ["L-1"]  # searched as typed, not as a pattern
        assert await keys(q=".*") == []
        assert (await app.http.get("/reviews", params={"q": "a\x00b"})).status_code == 422  # MongoDB refuses NUL

        page = await app.http.get("/reviews", params={"limit": 2, "offset": 2, "service": "search"})
        assert page.headers["x-total-count"] == "3"
        assert [review["incident_key"] for review in page.json()] == ["generic:L-3"]
        assert "link" not in page.headers
        first = await app.http.get("/reviews", params={"limit": 2})
        assert first.headers["x-total-count"] == "5"
        assert first.headers["link"] == '<http://review/reviews?offset=2&limit=2>; rel="next"'
        invalid = await app.http.get("/reviews", params={"status": "done", "limit": 0})
        assert invalid.status_code == 422
        assert {tuple(error["loc"]) for error in invalid.json()["detail"]} == {
            ("query", "status", 0),
            ("query", "limit"),
        }


async def test_validation_errors_name_the_field(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("VAL-1"))
        url = f"/reviews/{review.id}"
        editor = {**bearer(EDITOR), **if_match(1)}

        async def locations(method: str, path: str, body: Any, headers: dict[str, str] = editor) -> list[list[Any]]:
            answer = await app.http.request(method, path, json=body, headers=headers)
            assert answer.status_code == 422, answer.text
            return [error["loc"] for error in answer.json()["detail"]]

        bad_factor = {"contributing_factors": [{"category": "luck", "description": "x"}]}
        assert await locations("PATCH", url, bad_factor) == [["body", "contributing_factors", 0, "category"]]
        assert await locations("PATCH", url, {"due_at": "2026-12-01T10:00:00"}) == [["body", "due_at"]]
        assert await locations("PATCH", url, {"owners": "x"}) == [["body", "owners"]]
        assert await locations("PATCH", url, {"related_reviews": [review.id]}) == [["body", "related_reviews"]]
        wont_do = {"title": "x", "status": "wont_do"}
        assert await locations("POST", f"{url}/action-items", wont_do) == [["body", "status_reason"]]
        bad_ticket = {"title": "x", "ticket_url": "javascript:alert(1)"}
        assert await locations("POST", f"{url}/action-items", bad_ticket) == [["body", "ticket_url"]]
        unclear = {**bearer(EDITOR), "If-Match": "yesterday"}
        assert await locations("PATCH", url, {"owner": "x"}, unclear) == [["header", "If-Match"]]

        unknown = await app.http.patch(f"{url}/action-items/AI-7", json={"owner": "x"}, headers=editor)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_action_item")
        missing = await app.http.get("/reviews/no-such-review")
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
        assert [type(event).__name__ for event in await app.events(review.id)] == ["ReviewOpened"]


async def test_timeline_entries_and_action_item_updates(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("TL-1"))
        url = f"/reviews/{review.id}"
        entry = {"at": "2026-11-27T09:30:00+01:00", "kind": "mitigated", "message": "Rolled back", "version": 1}
        added = await app.http.post(f"{url}/timeline", json=entry, headers=bearer(EDITOR))
        assert added.status_code == 201
        assert added.json()["timeline"] == [
            {
                "id": "T-1",
                "at": "2026-11-27T08:30:00Z",
                "kind": "mitigated",
                "message": "Rolled back",
                "actor": None,
                "origin": "added",
            }
        ]
        item = {"title": "Alert on pool saturation", "category": "monitoring_alerting", "version": 2}
        assert (await app.http.post(f"{url}/action-items", json=item, headers=bearer(EDITOR))).status_code == 201
        wont = {"status": "wont_do", "status_reason": "Covered by the new SLO alert", "version": 3}
        updated = await app.http.patch(f"{url}/action-items/AI-1", json=wont, headers=bearer(EDITOR))
        assert updated.status_code == 200
        assert updated.json()["action_items"][0]["status_reason"] == "Covered by the new SLO alert"
        same = await app.http.patch(f"{url}/action-items/AI-1", json={**wont, "version": 4}, headers=bearer(EDITOR))
        assert same.json()["version"] == 4  # nothing changed: no new version, no event
        events = await app.events(review.id)
        assert [type(event).__name__ for event in events] == [
            "ReviewOpened",
            "ReviewUpdated",
            "ActionItemAdded",
            "ActionItemUpdated",
        ]
        assert events[-1].changed == ("status", "status_reason")


async def test_added_timeline_entries_are_edited_and_removed_imported_ones_are_refused(
    make_review_app: MakeApp,
) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        triggered = TimelineEntry(at=datetime(2026, 11, 27, 9, 12, tzinfo=UTC), kind="triggered", message="5xx > 2%")
        review = await app.open(incident("TL-2", timeline=(triggered,)))
        url = f"/reviews/{review.id}"
        editor = bearer(EDITOR)
        entry = {"at": "2026-11-27T09:30:00Z", "kind": "mitigated", "message": "Rolled back"}
        added = await app.http.post(f"{url}/timeline", json=entry, headers={**editor, **if_match(1)})
        assert [(e["id"], e["origin"]) for e in added.json()["timeline"]] == [("T-1", "imported"), ("T-2", "added")]

        edited = await app.http.patch(
            f"{url}/timeline/T-2",
            json={"message": "Rolled back to v41", "actor": "erin"},
            headers={**editor, **if_match(2)},
        )
        assert (edited.status_code, edited.headers["etag"]) == (200, '"3"')
        assert edited.json()["timeline"][1] == {
            **entry,
            "message": "Rolled back to v41",
            "actor": "erin",
            "id": "T-2",
            "origin": "added",
        }

        stale = await app.http.delete(f"{url}/timeline/T-2", headers={**editor, **if_match(2)})
        assert (stale.status_code, stale.json()["code"], stale.json()["current_version"]) == (409, "stale_version", 3)
        unstated = await app.http.delete(f"{url}/timeline/T-2", headers=editor)
        assert (unstated.status_code, unstated.json()["code"]) == (428, "version_required")
        as_viewer = await app.http.delete(f"{url}/timeline/T-2", headers={**bearer(VIEWER), **if_match(3)})
        assert as_viewer.status_code == 403

        imported = await app.http.patch(f"{url}/timeline/T-1", json={"message": "x"}, headers={**editor, **if_match(3)})
        assert (imported.status_code, imported.json()["code"]) == (409, "imported_timeline_entry")
        assert "T-1 was imported from generic and is read-only" in imported.json()["detail"]
        refused = await app.http.delete(f"{url}/timeline/T-1", headers={**editor, **if_match(3)})
        assert (refused.status_code, refused.json()["code"]) == (409, "imported_timeline_entry")
        unknown = await app.http.delete(f"{url}/timeline/T-9", headers={**editor, **if_match(3)})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_timeline_entry")

        removed = await app.http.delete(f"{url}/timeline/T-2", headers={**editor, **if_match(3)})
        assert (removed.status_code, removed.headers["etag"]) == (200, '"4"')
        stored = (await app.http.get(url)).json()
        assert [(e["id"], e["kind"]) for e in stored["timeline"]] == [("T-1", "triggered")]
        events = await app.events(review.id)
        assert [(type(event).__name__, event.version) for event in events] == [
            ("ReviewOpened", 1),
            ("ReviewUpdated", 2),
            ("ReviewUpdated", 3),
            ("ReviewUpdated", 4),
        ]
        assert all(event.changed == ("timeline",) for event in events[1:])


async def test_export_is_a_markdown_postmortem(make_review_app: MakeApp) -> None:
    async with make_review_app(policy=ReviewPolicy(required_sections=())) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("EXP-1", title="Checkout | payments API returning 502s"))
        edit = {"owner": "alice", "analysis": {"what_went_well": ["Rollback took 4 minutes"]}, "version": 1}
        await app.http.patch(f"/reviews/{review.id}", json=edit, headers=bearer(EDITOR))
        exported = await app.http.get(f"/reviews/{review.id}/export.md")
        assert exported.status_code == 200
        assert exported.headers["content-type"] == "text/markdown; charset=utf-8"
        assert exported.headers["etag"] == '"2"'
        document = exported.text
        assert document.startswith("# Postmortem: Checkout | payments API returning 502s\n")
        assert "| Facilitator | alice |" in document
        assert "- Rollback took 4 minutes" in document
        assert (await app.http.get("/reviews/nope/export.md")).status_code == 404
        assert review.status is ReviewStatus.OPEN
