"""The web UI in process (httpx over ASGI) against the real MongoDB-compatible server: sign-in, cookies, CSRF,
security headers, roles, forms, conflicts. The browser tests (tests/browser) drive the same pages in chromium."""

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas import ReviewStatus, TimelineEntry
from services.review.domain.editing import ActionItemDraft, SectionEdit, TimelineEntryDraft
from services.review.domain.record import Review
from services.review.domain.workflow import Transition
from services.review.web.csrf import CSRF_COOKIE
from services.review.web.security_headers import CONTENT_SECURITY_POLICY
from services.review.web.sessions import SESSION_COOKIE
from tests.integration.review.conftest import ADMIN, EDITOR, OTHER_EDITOR, VIEWER, ReviewApp, incident

pytestmark = pytest.mark.integration

MakeApp = Callable[..., AbstractAsyncContextManager[ReviewApp]]


@pytest.fixture
async def web(make_review_app: MakeApp) -> AsyncIterator[ReviewApp]:
    async with make_review_app(web_session_secret="test-secret-0123456789") as review_app:
        yield review_app


def csrf_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def hidden(page: httpx.Response, form_action: str, name: str) -> str:
    """A hidden field's value in the form posting to ``form_action``."""
    form = page.text.split(f'action="{form_action}"', 1)[1].split("</form>", 1)[0]
    found = re.search(rf'name="{name}" value="([^"]*)"', form)
    assert found is not None
    return found.group(1).replace("&#34;", '"').replace("&quot;", '"')


async def sign_in(http: httpx.AsyncClient, token: str) -> None:
    page = await http.get("/sign-in")
    answer = await http.post("/sign-in", data={"token": token, "csrf_token": csrf_token(page), "next": "/"})
    assert answer.status_code == 303, answer.text


def sections_form(page: httpx.Response, review: Review, **values: str) -> dict[str, str]:
    action = f"/review/{review.id}/sections"
    return {
        "csrf_token": csrf_token(page),
        "version": hidden(page, action, "version"),
        "base": hidden(page, action, "base"),
        **values,
    }


async def test_pages_carry_a_strict_policy_and_no_sniffing(web: ReviewApp) -> None:
    for path in ("/sign-in", "/", "/static/ui.css"):
        answer = await web.http.get(path)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
    page = await web.http.get("/sign-in")
    assert "<script" not in page.text
    assert " style=" not in page.text
    assert page.headers["Cache-Control"] == "no-store"


async def test_a_page_needs_a_session_and_sends_to_sign_in(web: ReviewApp) -> None:
    answer = await web.http.get("/action-items?owner=erin")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Faction-items%3Fowner%3Derin"


async def test_sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_clears_it(web: ReviewApp) -> None:
    page = await web.http.get("/sign-in")
    assert CSRF_COOKIE in web.http.cookies
    answer = await web.http.post("/sign-in", data={"token": EDITOR, "csrf_token": csrf_token(page), "next": "/"})
    assert answer.status_code == 303
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert f"Max-Age={480 * 60}" in cookie
    assert "Secure" not in cookie  # served over plain http here: see the next test for https
    assert EDITOR not in cookie  # the token never travels in the cookie
    home = await web.http.get("/")
    assert "Signed in as <strong>erin</strong> (editor)" in home.text

    out = await web.http.post("/sign-out", data={"csrf_token": csrf_token(home)})
    assert out.status_code == 303
    assert (await web.http.get("/")).status_code == 303


async def test_cookies_are_secure_over_https(web: ReviewApp) -> None:
    https = httpx.AsyncClient(transport=web.http._transport, base_url="https://review")
    async with https:
        page = await https.get("/sign-in")
        assert "Secure" in page.headers["set-cookie"]
        answer = await https.post("/sign-in", data={"token": VIEWER, "csrf_token": csrf_token(page)})
        assert all("Secure" in header for header in answer.headers.get_list("set-cookie"))


async def test_an_unknown_token_is_refused(web: ReviewApp) -> None:
    page = await web.http.get("/sign-in")
    answer = await web.http.post("/sign-in", data={"token": "not-a-token-0123456789", "csrf_token": csrf_token(page)})
    assert answer.status_code == 401
    assert "not known" in answer.text
    assert SESSION_COOKIE not in web.http.cookies


async def test_a_forged_or_altered_session_cookie_is_not_a_session(web: ReviewApp) -> None:
    await sign_in(web.http, VIEWER)
    session = web.http.cookies[SESSION_COOKIE]
    payload, signature = session.split(".")
    forged = payload.replace(payload[-2:], "AA") + "." + signature
    web.http.cookies.set(SESSION_COOKIE, forged)
    assert (await web.http.get("/")).status_code == 303


async def test_a_session_ends_when_it_expires(web: ReviewApp) -> None:
    await sign_in(web.http, VIEWER)
    assert (await web.http.get("/")).status_code == 200
    web.clock.now += timedelta(minutes=481)
    assert (await web.http.get("/")).status_code == 303


async def test_a_write_without_or_with_a_wrong_csrf_token_is_refused(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-CSRF"))
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    form = sections_form(page, review, owner="mallory")
    for token in (None, "0" * 64):
        data = {key: value for key, value in form.items() if key != "csrf_token"}
        if token is not None:
            data["csrf_token"] = token
        answer = await web.http.post(f"/review/{review.id}/sections", data=data)
        assert answer.status_code == 403
        assert "This form was refused" in answer.text
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert (await web.service.get(review.id)).owner is None
    # A token made for another browser's nonce does not fit this one either.
    other = httpx.AsyncClient(transport=web.http._transport, base_url="http://review")
    async with other:
        foreign = csrf_token(await other.get("/sign-in"))
    answer = await web.http.post(f"/review/{review.id}/sections", data={**form, "csrf_token": foreign})
    assert answer.status_code == 403
    assert (await web.http.post(f"/review/{review.id}/sections", data=form)).status_code == 303
    assert (await web.service.get(review.id)).owner == "mallory"


async def test_a_viewer_sees_no_edit_controls_and_a_forged_post_is_refused(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-VIEWER"))
    await sign_in(web.http, VIEWER)
    page = await web.http.get(f"/review/{review.id}")
    assert page.status_code == 200
    for control in ("Save the record", "Add action item", "Add timeline entry", "Start the review"):
        assert control not in page.text
    data = {"csrf_token": csrf_token(page), "version": "1", "base": "{}", "owner": "vic"}
    answer = await web.http.post(f"/review/{review.id}/sections", data=data)
    assert answer.status_code == 403
    assert "your role (viewer) may not do this: editor needed" in answer.text
    moved = await web.http.post(f"/review/{review.id}/move", data={**data, "to": "in_review"})
    assert moved.status_code == 403
    assert (await web.service.get(review.id)).version == 1


async def test_an_editor_cannot_cancel_and_sees_no_button_for_it(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-CANCEL"))
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    assert "Start the review" in page.text
    assert "Cancel the review" not in page.text
    data = {"csrf_token": csrf_token(page), "version": "1", "to": "cancelled", "reason": "duplicate"}
    assert (await web.http.post(f"/review/{review.id}/move", data=data)).status_code == 403
    assert (await web.service.get(review.id)).status == ReviewStatus.OPEN


async def test_admin_cancels_with_a_reason(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-ADMIN"))
    await sign_in(web.http, ADMIN)
    page = await web.http.get(f"/review/{review.id}")
    assert "Cancel the review" in page.text
    data = {"csrf_token": csrf_token(page), "version": "1", "to": "cancelled", "reason": "a duplicate of another"}
    assert (await web.http.post(f"/review/{review.id}/move", data=data)).status_code == 303
    assert (await web.service.get(review.id)).status == ReviewStatus.CANCELLED


async def test_a_refused_approval_lists_every_reason_next_to_the_fields(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-APPROVE"))
    await web.service.transition(review.id, 1, Transition(to=ReviewStatus.IN_REVIEW), "erin")
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    answer = await web.http.post(
        f"/review/{review.id}/move", data={"csrf_token": csrf_token(page), "version": "2", "to": "approved"}
    )
    assert answer.status_code == 409
    assert "there are no findings yet" in answer.text
    assert "there is no recommendation" in answer.text
    assert "the policy requires these sections, still empty: owner" in answer.text
    for field in ("owner", "what_went_wrong", "factors", "recommendations"):
        assert f'id="sections-{field}-problem-1"' in answer.text, field


async def test_an_edit_keeps_what_was_typed_when_someone_saved_first(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-RACE"))
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    form = sections_form(page, review, what_went_wrong="Mine: the pool was too small", owner="erin")
    # Someone else saves first: a different owner and the recommendation.
    other = httpx.AsyncClient(transport=web.http._transport, base_url="http://review")
    async with other:
        await sign_in(other, OTHER_EDITOR)
        their_page = await other.get(f"/review/{review.id}")
        their = sections_form(their_page, review, owner="eve", recommendations="Canary config changes")
        assert (await other.post(f"/review/{review.id}/sections", data=their)).status_code == 303
    answer = await web.http.post(f"/review/{review.id}/sections", data=form)
    assert answer.status_code == 409
    assert "eve saved this review while you were editing" in answer.text
    assert "Mine: the pool was too small</textarea>" in answer.text  # what was typed, kept
    assert 'id="sections-owner-theirs"' in answer.text  # both changed the owner: theirs shown beside mine
    assert "Canary config changes</textarea>" in answer.text  # only they changed it: taken, not undone
    stored = await web.service.get(review.id)
    assert stored.owner == "eve"
    assert stored.analysis.what_went_wrong == []
    again = sections_form(answer, review, what_went_wrong="Mine: the pool was too small", owner="erin")
    again["recommendations"] = "Canary config changes"
    assert (await web.http.post(f"/review/{review.id}/sections", data=again)).status_code == 303
    stored = await web.service.get(review.id)
    assert (stored.owner, stored.recommendations) == ("erin", ["Canary config changes"])
    assert stored.analysis.what_went_wrong == ["Mine: the pool was too small"]


async def test_an_added_timeline_entry_is_edited_and_removed_an_imported_one_has_no_inputs(web: ReviewApp) -> None:
    triggered = TimelineEntry(at=datetime(2026, 11, 27, 9, 12, tzinfo=UTC), kind="triggered", message="5xx > 2%")
    review = await web.open(incident("WEB-TL", timeline=(triggered,)))
    draft = TimelineEntryDraft(at=datetime(2026, 11, 27, 9, 30, tzinfo=UTC), kind="mitigated", message="Rolled back")
    await web.service.add_timeline_entry(review.id, 1, draft, "erin")
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    assert page.status_code == 200
    action = f"/review/{review.id}/timeline/T-2"
    assert 'id="entry-T-2-message"' in page.text
    assert "imported from the tool (read-only)" in page.text
    assert "/timeline/T-1" not in page.text  # the imported entry: no form
    assert 'id="entry-T-1-' not in page.text  # and no inputs

    def entry_form(answer: httpx.Response, **values: str) -> dict[str, str]:
        base = json.loads(hidden(answer, action, "base"))
        return {
            "csrf_token": csrf_token(answer),
            "version": hidden(answer, action, "version"),
            "base": json.dumps(base),
            **base,
            **values,
        }

    saved = await web.http.post(action, data=entry_form(page, message="Rolled back to v41", actor="erin"))
    assert saved.status_code == 303
    stored = await web.service.get(review.id)
    assert [(e.id, e.kind, e.message, e.actor) for e in stored.timeline] == [
        ("T-1", "triggered", "5xx > 2%", None),
        ("T-2", "mitigated", "Rolled back to v41", "erin"),
    ]
    assert stored.version == 3

    stale = await web.http.post(action, data=entry_form(page, message="From the old page"))  # drawn at version 2
    assert stale.status_code == 409
    assert "From the old page</textarea>" in stale.text  # what was typed, kept
    assert 'id="entry-T-2-message-theirs"' in stale.text  # both changed the message: theirs beside it

    forged = await web.http.post(
        f"/review/{review.id}/timeline/T-1",
        data={**entry_form(page, message="not what happened"), "version": "3"},
    )
    assert forged.status_code == 409
    assert "T-1 was imported from generic and is read-only" in forged.text

    page = await web.http.get(f"/review/{review.id}")
    removed = await web.http.post(action, data=entry_form(page, remove="yes"))
    assert removed.status_code == 303
    assert [e.id for e in (await web.service.get(review.id)).timeline] == ["T-1"]


async def test_invalid_input_is_shown_next_to_the_field_and_kept(web: ReviewApp) -> None:
    review = await web.open(incident("WEB-INVALID"))
    await sign_in(web.http, EDITOR)
    page = await web.http.get(f"/review/{review.id}")
    data = {
        "csrf_token": csrf_token(page),
        "version": "1",
        "title": "Alert on pool saturation",
        "status": "wont_do",
        "ticket_url": "javascript:alert(1)",
        "priority": "high",
        "category": "other",
    }
    answer = await web.http.post(f"/review/{review.id}/action-items", data=data)
    assert answer.status_code == 422
    assert 'id="new-item-ticket_url-error"' in answer.text
    assert 'value="Alert on pool saturation"' in answer.text
    assert (await web.service.get(review.id)).action_items == []


async def test_action_items_across_reviews_are_filtered(web: ReviewApp) -> None:
    first = await web.open(incident("WEB-ITEMS-1", team="payments"))
    second = await web.open(incident("WEB-ITEMS-2", team="search"))
    due = datetime(2026, 11, 20, tzinfo=UTC)  # before the app's clock: overdue
    pool_alert = ActionItemDraft(title="Pool alert", owner="erin", due_at=due)
    await web.service.add_action_item(first.id, 1, pool_alert, "erin")
    await web.service.add_action_item(second.id, 1, ActionItemDraft(title="Search runbook", owner="bob"), "erin")
    await sign_in(web.http, VIEWER)
    everything = await web.http.get("/action-items")
    assert "Pool alert" in everything.text
    assert "Search runbook" in everything.text
    assert "⚠ Overdue" in everything.text
    by_team = await web.http.get("/action-items?team=search")
    assert "Search runbook" in by_team.text
    assert "Pool alert" not in by_team.text
    await sign_in(web.http, EDITOR)  # erin
    mine = await web.http.get("/action-items?mine=1")
    assert "Pool alert" in mine.text
    assert "Search runbook" not in mine.text
    overdue = await web.http.get("/action-items?overdue=1&owner=erin&priority=medium")
    assert "Pool alert" in overdue.text
    assert "Search runbook" not in overdue.text


async def test_the_list_shows_mine_and_the_count(web: ReviewApp) -> None:
    mine = await web.open(incident("WEB-MINE"))
    vic_takes_part = SectionEdit.model_validate({"participants": [{"name": "vic", "function": "it"}]})
    await web.open(incident("WEB-NOT-MINE"))
    await web.service.edit_sections(mine.id, 1, vic_takes_part, "erin")
    await sign_in(web.http, VIEWER)
    listed = await web.http.get("/?mine=1")
    assert "1 review matches" in listed.text
    assert f'href="/review/{mine.id}"' in listed.text
    assert (await web.http.get("/?status=bogus")).status_code == 200
