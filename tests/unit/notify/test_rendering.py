"""Messages link to the review, say why, and carry event text safely in each format."""

import json

from services.notify.domain.chat_formats import mattermost_payload, slack_payload, teams_payload
from services.notify.domain.rendering import item, render, review_link
from tests.unit.notify.builders import escalated, notice_of, overdue, reminder

BASE = "https://lessons.example.org/ui/review"


def test_a_message_links_to_the_review_and_says_why() -> None:
    message = render([item(notice_of(reminder("alice")), "You are this action item's owner.", BASE)])
    assert message.subject == "Reminder: action item “Add a latency alert” is due 2026-12-02 09:00 UTC"
    link = "https://lessons.example.org/ui/review/r-1"
    for body in (message.text, message.html):
        assert link in body
        assert "You are this action item&#39;s owner." in body or "You are this action item's owner." in body
    assert "Review: Checkout latency <b>1</b>" in message.text


def test_html_escapes_event_text() -> None:
    message = render([item(notice_of(reminder("alice")), "why <script>", BASE)])
    assert "<b>1</b>" not in message.html
    assert "Checkout latency &lt;b&gt;1&lt;/b&gt;" in message.html
    assert "<script>" not in message.html


def test_review_ids_are_quoted_in_links() -> None:
    assert review_link("http://127.0.0.1:8082/reviews/", "a b/c") == "http://127.0.0.1:8082/reviews/a%20b%2Fc"


def test_a_subject_has_no_line_breaks() -> None:
    event = reminder("alice").model_copy(update={"action_item_title": "first\r\nBcc: everyone@example.org"})
    message = render([item(notice_of(event), "why", BASE)])
    assert "\n" not in message.subject
    assert "\r" not in message.subject


def test_a_digest_is_one_message_with_every_reminder() -> None:
    items = [item(notice_of(overdue("bob", n)), "You are this action item's owner.", BASE) for n in (1, 2, 3)]
    message = render(items)
    assert message.is_digest
    assert message.subject.startswith("3 reminders: ")
    for n in (1, 2, 3):
        assert f"{BASE}/r-{n}" in message.text
        assert f"Overdue: action item “Item {n}”" in message.html


def test_slack_payload_follows_block_kit_and_escapes_markup() -> None:
    event = escalated("team_lead").model_copy(update={"title": "<!channel> & friends"})
    message = render([item(notice_of(event), "Escalation level 1: you are team_lead of payments.", BASE)])
    payload = slack_payload(message, "<@U0LEAD>")
    assert payload["text"].startswith("<@U0LEAD> ")
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]
    section = payload["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "&lt;!channel&gt; &amp; friends" in section["text"]
    assert "<!channel>" not in json.dumps(payload)
    assert f"<{BASE}/r-1|Open the review>" in section["text"]
    assert "Why: Escalation level 1" in payload["blocks"][2]["elements"][0]["text"]


def test_teams_payload_is_an_adaptive_card_message() -> None:
    message = render([item(notice_of(reminder("alice")), "You are this action item's owner.", BASE)])
    payload = teams_payload(message)
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    kinds = [element["type"] for element in card["body"]]
    assert kinds == ["TextBlock", "TextBlock", "FactSet", "TextBlock", "ActionSet"]
    (action,) = card["body"][4]["actions"]
    assert action == {"type": "Action.OpenUrl", "title": "Open the review", "url": f"{BASE}/r-1"}


def test_mattermost_payload_is_slack_text_with_a_markdown_link() -> None:
    message = render([item(notice_of(reminder("alice")), "why", BASE)])
    payload = mattermost_payload(message, "@alice")
    assert set(payload) == {"text"}
    assert payload["text"].startswith("@alice **Reminder")
    assert f"[Open the review]({BASE}/r-1)" in payload["text"]
