"""Chat payloads in each service's documented incoming-webhook format.

- Slack: ``{"text": fallback, "blocks": [...]}`` (Block Kit: ``header``, ``section`` with ``mrkdwn`` text,
  ``context``); ``&``, ``<`` and ``>`` in our text are escaped, since Slack reads ``<...>`` as links and mentions
  (``<!channel>`` would ping everyone).
- Mattermost: takes Slack's ``text`` (Markdown); it does not render Block Kit, so only ``text`` is sent.
- Microsoft Teams: a ``message`` whose one attachment is an Adaptive Card
  (``application/vnd.microsoft.card.adaptive``): ``TextBlock``, ``FactSet``, ``Action.OpenUrl``.
"""

from typing import Any

from services.notify.domain.rendering import Message, one_line

SLACK_TEXT_CHARS = 2900  # a section's text is limited to 3000 characters
SLACK_MAX_ITEMS = 15  # Slack allows 50 blocks a message; three per item, plus a header and a footer
TEAMS_MAX_ITEMS = 15
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str) -> str:
    """For ``plain_text`` objects, which Slack shows as given: no angle brackets that could read as a mention."""
    return text.replace("<", "(").replace(">", ")")


def _mention(handle: str | None) -> str:
    return f"{handle} " if handle else ""


def slack_payload(message: Message, handle: str | None = None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _plain(one_line(message.subject, 150)), "emoji": False},
        }
    ]
    for item in message.items[:SLACK_MAX_ITEMS]:
        lines = [f"*{slack_escape(item.headline)}*"]
        lines += [f"*{slack_escape(label)}:* {slack_escape(value)}" for label, value in item.facts]
        lines.append(f"<{item.link}|Open the review>")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SLACK_TEXT_CHARS]}})
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(f"Why: {item.reason}")[:2000]}]}
        )
    hidden = len(message.items) - SLACK_MAX_ITEMS
    if hidden > 0:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"…and {hidden} more."}})
    fallback = f"{_mention(handle)}{slack_escape(message.subject)} <{message.items[0].link}|Open the review>"
    return {"text": fallback, "blocks": blocks}


def _markdown_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "\\`*_[]<>#|~" else char for char in text)


def mattermost_payload(message: Message, handle: str | None = None) -> dict[str, Any]:
    parts = [f"{_mention(handle)}**{_markdown_escape(message.subject)}**"]
    for item in message.items:
        facts = "; ".join(f"{label}: {_markdown_escape(value)}" for label, value in item.facts)
        parts.append(
            f"- {_markdown_escape(item.headline)} — [Open the review]({item.link})\n  {facts}\n"
            f"  _Why: {_markdown_escape(item.reason)}_"
        )
    return {"text": "\n".join(parts)}


def teams_payload(message: Message, handle: str | None = None) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"{_mention(handle)}{message.subject}",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    for item in message.items[:TEAMS_MAX_ITEMS]:
        body += [
            {"type": "TextBlock", "text": item.headline, "weight": "Bolder", "wrap": True, "separator": True},
            {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in item.facts]},
            {"type": "TextBlock", "text": f"Why: {item.reason}", "isSubtle": True, "wrap": True},
            {
                "type": "ActionSet",
                "actions": [{"type": "Action.OpenUrl", "title": "Open the review", "url": item.link}],
            },
        ]
    hidden = len(message.items) - TEAMS_MAX_ITEMS
    if hidden > 0:
        body.append({"type": "TextBlock", "text": f"…and {hidden} more.", "wrap": True})
    card = {"$schema": ADAPTIVE_CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def payload_for(kind: str, message: Message, handle: str | None = None) -> dict[str, Any]:
    if kind == "slack":
        return slack_payload(message, handle)
    if kind == "mattermost":
        return mattermost_payload(message, handle)
    if kind == "teams":
        return teams_payload(message, handle)
    raise ValueError(f"unknown chat kind {kind!r}")
