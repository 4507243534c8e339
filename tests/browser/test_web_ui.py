"""The web UI in Debian's chromium against the review service as a process, found by roles and labels."""

import os
import re

import pytest
from markdown_it import MarkdownIt
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from tests.browser.conftest import ADMIN, EDITOR, OTHER_EDITOR, VIEWER, ReviewService, sign_in
from tests.conftest import REPO

pytestmark = pytest.mark.browser

# The README's picture of the review page is refreshed only when asked (UPDATE_SCREENSHOT=1 scripts/test
# tests/browser): it holds times and ids that change every run, so an ordinary run must not dirty the tree.
COMMITTED_SCREENSHOT = REPO / "docs" / "review-page.png"


def test_sign_in_and_sign_out(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # a page needs a session
    page.get_by_label("API token").fill("not-a-known-token-0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not known")

    sign_in(page, EDITOR)
    expect(page.get_by_text("Signed in as erin (editor)")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["lessons_session"]["httpOnly"]
    assert cookies["lessons_session"]["sameSite"] == "Strict"

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "lessons_session" not in {cookie["name"] for cookie in page.context.cookies()}
    page.goto("/action-items")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_viewer_sees_no_edit_controls_and_a_forged_post_is_refused(page: Page, review_service: ReviewService) -> None:
    review_id = review_service.open_review("Viewer cannot edit this")
    sign_in(page, VIEWER)
    page.get_by_role("link", name="Viewer cannot edit this").click()
    expect(page.get_by_role("heading", name="Viewer cannot edit this")).to_be_visible()
    expect(page.get_by_role("textbox")).to_have_count(0)
    for name in ("Save the record", "Add action item", "Add timeline entry", "Start the review"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_text("editing needs the editor role")).to_be_visible()

    # The viewer forges the editor's form, with a valid CSRF token of their own session.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        f"/review/{review_id}/sections",
        form={"csrf_token": token or "", "version": "1", "base": "{}", "owner": "vic"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert "your role (viewer) may not do this" in answer.text()
    assert review_service.review(review_id)["owner"] is None


def test_a_write_without_its_csrf_token_is_refused(page: Page, review_service: ReviewService) -> None:
    review_id = review_service.open_review("CSRF target")
    sign_in(page, EDITOR)
    page.goto(f"/review/{review_id}")
    page.get_by_label("Owner (facilitator)").fill("mallory")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(field => field.remove())")
    page.get_by_role("button", name="Save the record").click()
    expect(page.get_by_role("heading", name="This form was refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("the form carried no security token")
    assert review_service.review(review_id)["owner"] is None


def _fill_record(page: Page) -> None:
    page.get_by_label("Owner (facilitator)").fill("erin")
    page.get_by_label("Participant 1: name").fill("Erin")
    page.get_by_label("Participant 1: function").select_option("operations")
    page.get_by_label("Participant 1: role in the incident").fill("incident commander")
    page.get_by_label("What went well").fill("Paging reached the on-call engineer within a minute")
    page.get_by_label("What went wrong").fill("The release lowered the connection pool limit\nNo alert on saturation")
    page.get_by_label("Response effectiveness").fill("The runbook's rollback step worked as written.")
    page.get_by_label("Factor 1: category").select_option("technology")
    page.get_by_label("Factor 1: description").fill("Pool size came from a stale default")
    page.get_by_label("Recommendations").fill("Canary every configuration change")
    page.get_by_role("button", name="Save the record").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")


def test_a_review_goes_from_open_to_closed_in_the_browser(page: Page, review_service: ReviewService) -> None:
    review_id = review_service.open_review("Checkout API returning 502s")
    sign_in(page, EDITOR)
    page.get_by_label("Title contains").fill("Checkout API returning")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="Checkout API returning 502s").click()
    expect(page.get_by_text("the tool said: SEV-critical")).to_be_visible()
    expect(page.get_by_role("link", name="open in generic")).to_be_visible()

    _fill_record(page)
    timeline = page.get_by_role("group", name="New timeline entry")
    timeline.get_by_label("When (UTC)").fill("2026-11-27T09:40:00")
    timeline.get_by_label("What happened (kind)").fill("mitigated")
    timeline.get_by_label("Message").fill("Rolled back the release")
    page.get_by_role("button", name="Add timeline entry").click()
    expect(page.get_by_role("cell", name="Rolled back the release")).to_be_visible()

    new_item = page.get_by_role("group", name="New action item")
    new_item.get_by_label("Title").fill("Alert on pool saturation")
    new_item.get_by_label("Owner").fill("erin")
    new_item.get_by_label("Due (UTC)").fill("2026-12-20T12:00:00")
    new_item.get_by_label("Priority").select_option("high")
    new_item.get_by_label("Category").select_option("monitoring_alerting")
    new_item.get_by_label("Ticket link").fill("https://tracker.example/PAY-12")
    # The default policy asks a critical review for a measurable verification before approval.
    new_item.get_by_label("Verification method").select_option("recurrence")
    page.get_by_role("button", name="Add action item").click()
    expect(page.get_by_role("group", name="Action item AI-1")).to_be_visible()

    page.get_by_role("button", name="Start the review").click()
    expect(page.get_by_text("Status: In review")).to_be_visible()
    page.goto(f"/review/{review_id}")  # from the top, for the README
    page.set_viewport_size({"width": 1280, "height": 1800})
    shot = page.screenshot(full_page=False)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        COMMITTED_SCREENSHOT.write_bytes(shot)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Status: Approved")).to_be_visible()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Status: Published")).to_be_visible()

    # Closing waits for the action item: done first.
    item = page.get_by_role("group", name="Action item AI-1")
    item.get_by_label("Status", exact=True).select_option("done")
    page.get_by_role("button", name="Save action item AI-1").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    page.get_by_role("button", name="Close the review").click()
    expect(page.get_by_text("Status: Closed")).to_be_visible()
    expect(page.get_by_text("No move is possible from here.")).to_be_visible()

    stored = review_service.review(review_id)
    assert stored["status"] == "closed"
    assert [change["to_status"] for change in stored["status_history"]] == [
        "in_review",
        "approved",
        "published",
        "closed",
    ]
    assert stored["analysis"]["what_went_wrong"] == [
        "The release lowered the connection pool limit",
        "No alert on saturation",
    ]
    assert stored["action_items"][0]["status"] == "done"
    assert stored["updated_by"] == "erin"

    page.get_by_role("link", name="Postmortem (read-only, printable)").click()
    expect(page.get_by_role("heading", name="Postmortem: Checkout API returning 502s")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_text("Pool size came from a stale default")).to_be_visible()


def test_a_refused_approval_shows_every_reason_next_to_the_fields(page: Page, review_service: ReviewService) -> None:
    review_id = review_service.open_review("Search latency above target")
    sign_in(page, EDITOR)
    page.goto(f"/review/{review_id}")
    page.get_by_role("button", name="Start the review").click()
    page.get_by_role("button", name="Approve").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Not moved: the service refused it.")
    expect(alert.get_by_role("listitem")).to_have_count(4)
    expect(alert).to_contain_text("the policy requires a measurable verification")
    expect(alert).to_contain_text("there are no findings yet")
    expect(alert).to_contain_text("there is no recommendation")
    expect(alert).to_contain_text("the policy requires these sections, still empty: owner")
    # Next to each field concerned, as its description.
    expect(page.get_by_label("Owner (facilitator)")).to_have_accessible_description(re.compile("still empty: owner"))
    expect(page.get_by_label("What went wrong")).to_have_accessible_description(re.compile("no findings yet"))
    expect(page.get_by_label("Recommendations")).to_have_accessible_description(re.compile("no recommendation"))
    expect(page.get_by_text("Status: In review")).to_be_visible()


def test_two_people_editing_at_once_lose_nothing(browser: Browser, review_service: ReviewService) -> None:
    review_id = review_service.open_review("Two editors at once")
    first: BrowserContext = browser.new_context(base_url=review_service.url)
    second: BrowserContext = browser.new_context(base_url=review_service.url)
    try:
        erin, eve = first.new_page(), second.new_page()
        sign_in(erin, EDITOR)
        sign_in(eve, OTHER_EDITOR)
        erin.goto(f"/review/{review_id}")
        eve.goto(f"/review/{review_id}")

        erin.get_by_label("What went wrong").fill("Erin: the pool limit was lowered")
        erin.get_by_label("Recommendations").fill("Erin: canary config changes")
        erin.get_by_role("button", name="Save the record").click()
        expect(erin.get_by_role("status")).to_contain_text("Saved")

        eve.get_by_label("What went wrong").fill("Eve: nobody was paged for saturation")
        eve.get_by_label("Owner (facilitator)").fill("eve")
        eve.get_by_role("button", name="Save the record").click()

        expect(eve.get_by_role("alert")).to_contain_text("erin saved this review while you were editing")
        expect(eve.get_by_label("What went wrong")).to_have_value("Eve: nobody was paged for saturation")
        expect(eve.get_by_label("Owner (facilitator)")).to_have_value("eve")
        # What erin wrote in the same field is shown beside it; what only erin changed is taken in, not undone.
        expect(eve.get_by_label("What went wrong")).to_have_accessible_description(
            re.compile("Erin: the pool limit was lowered")
        )
        expect(eve.get_by_label("Recommendations")).to_have_value("Erin: canary config changes")
        assert review_service.review(review_id)["owner"] is None

        eve.get_by_label("What went wrong").fill(
            "Erin: the pool limit was lowered\nEve: nobody was paged for saturation"
        )
        eve.get_by_role("button", name="Save the record").click()
        expect(eve.get_by_role("status")).to_contain_text("Saved")
        stored = review_service.review(review_id)
        assert stored["analysis"]["what_went_wrong"] == [
            "Erin: the pool limit was lowered",
            "Eve: nobody was paged for saturation",
        ]
        assert stored["recommendations"] == ["Erin: canary config changes"]
        assert stored["owner"] == "eve"
    finally:
        first.close()
        second.close()


HOSTILE_TITLE = '<script>alert("title")</script> [click](javascript:alert(1)) **bold**'
HOSTILE_TEXT = '<img src=x onerror=alert("section")> <b>loud</b> ![x](https://evil.example/x.png) # heading'


def test_script_and_markup_in_a_title_and_a_section_stay_inert(page: Page, review_service: ReviewService) -> None:
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    review_id = review_service.open_review(HOSTILE_TITLE)
    sign_in(page, ADMIN)
    page.goto(f"/review/{review_id}")
    page.get_by_label("What went wrong").fill(HOSTILE_TEXT)
    page.get_by_role("button", name="Save the record").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")

    expect(page.get_by_role("heading", name=HOSTILE_TITLE)).to_be_visible()  # shown as the text it is
    expect(page.get_by_label("What went wrong")).to_have_value(HOSTILE_TEXT)
    page.goto(f"/review/{review_id}/postmortem")
    expect(page.get_by_text(HOSTILE_TEXT)).to_be_visible()
    expect(page.get_by_role("img")).to_have_count(0)
    expect(page.get_by_role("link", name="click")).to_have_count(0)
    assert page.locator("script").count() == 0
    page.goto("/")
    expect(page.get_by_role("link", name=HOSTILE_TITLE)).to_be_visible()
    assert dialogs == []

    export = page.request.get(f"/review/{review_id}/export.md")
    assert export.ok
    assert export.headers["content-type"].startswith("text/markdown")
    document = export.text()
    assert "&lt;script&gt;" in document
    # As a wiki or chat tool would render it (raw HTML allowed): still no script, image, link or emphasis of theirs.
    rendered = MarkdownIt("commonmark").render(document)
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert "javascript:alert(1)</a>" not in rendered
    assert 'href="javascript' not in rendered
    assert "<strong>bold</strong>" not in rendered
    assert "<b>loud</b>" not in rendered
