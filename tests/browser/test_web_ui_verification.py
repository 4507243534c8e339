"""A manual verdict recorded in Debian's chromium by the item's verifier, found by roles and labels."""

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import EDITOR, OTHER_EDITOR, ReviewService, sign_in

pytestmark = pytest.mark.browser


def test_the_verifier_records_a_manual_verdict(page: Page, review_service: ReviewService) -> None:
    review_id = review_service.open_review("Checkout retries storm the database")
    item = {
        "title": "Throttle checkout retries",
        "owner": "erin",
        "status": "done",
        "verification": {"method": "manual", "verifier": "eve"},
        "version": 1,
    }
    answer = httpx.post(
        f"{review_service.url}/reviews/{review_id}/action-items",
        json=item,
        headers={"Authorization": f"Bearer {EDITOR}"},
        timeout=5,
    )
    assert answer.status_code == 201, answer.text

    sign_in(page, OTHER_EDITOR)  # eve, the verifier named by the plan
    page.goto(f"/review/{review_id}")
    page.get_by_label("Verdict", exact=True).select_option("effective")
    page.get_by_label("Evidence", exact=True).fill("Load test at twice the peak: no retry storm <b>held</b>")
    page.get_by_label("Evidence links").fill("https://grafana.example/d/checkout")
    page.get_by_role("button", name="Record verdict on AI-1").click()

    expect(page.get_by_role("status")).to_contain_text("Saved.")
    verification = page.get_by_role("region", name="Verification of AI-1")
    expect(verification).to_contain_text("✔ Effective")
    expect(verification).to_contain_text("no retry storm <b>held</b>")  # shown as typed, not as markup
    expect(verification.get_by_role("link", name="https://grafana.example/d/checkout")).to_be_visible()
    result = review_service.review(review_id)["action_items"][0]["verification_result"]
    assert (result["verdict"], result["recorded_by"]) == ("effective", "eve")
