"""How a notice reads: subject, plain text, HTML (autoescaped) and the parts chat payloads are built from.

Every message links to the review and says why its recipient receives it. Text from events (titles, names,
details) is untrusted: HTML escapes it (Jinja2 autoescaping), subjects lose line breaks (no header injection), and
the chat adapters escape it for their own markup.
"""

from dataclasses import dataclass
from urllib.parse import quote

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from services.notify.domain.notices import Notice, due_text

SUBJECT_CHARS = 200
FIELD_CHARS = 500


@dataclass(frozen=True)
class Item:
    """One notice as a reader sees it."""

    headline: str
    facts: tuple[tuple[str, str], ...]
    link: str
    reason: str


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    items: tuple[Item, ...]

    @property
    def is_digest(self) -> bool:
        return len(self.items) > 1


_TEXT = """\
{% for item in items -%}
{{ item.headline }}

{% for label, value in item.facts -%}
{{ label }}: {{ value }}
{% endfor %}
Open the review: {{ item.link }}
Why you receive this: {{ item.reason }}
{% if not loop.last %}
----
{% endif %}
{% endfor %}
-- incident-lessons notify
"""

_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body>
{% if items|length > 1 %}<p>{{ items|length }} notices, grouped into one message (your digest setting).</p>{% endif %}
{% for item in items %}
<section>
<h2>{{ item.headline }}</h2>
<table>
{% for label, value in item.facts %}<tr><th scope="row" align="left">{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
<p><a href="{{ item.link }}">Open the review</a></p>
<p><small>Why you receive this: {{ item.reason }}</small></p>
</section>
{% endfor %}
<p><small>incident-lessons notify</small></p>
</body></html>
"""

_templates = Environment(
    loader=DictLoader({"message.txt": _TEXT, "message.html": _HTML}),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=False,
    keep_trailing_newline=True,
)


def review_link(link_base: str, review_id: str) -> str:
    """``<link_base>/<id>``, where ``link_base`` is where reviews live: ``<ui>/review`` or ``<api>/reviews``."""
    return f"{link_base.rstrip('/')}/{quote(review_id, safe='')}"


def one_line(value: str, limit: int = FIELD_CHARS) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _quoted(value: str | None) -> str:
    return f"“{one_line(value or '', 150)}”"


def headline(notice: Notice) -> str:
    item = _quoted(notice.action_item_title or notice.action_item_id)
    review = _quoted(notice.title)
    subject = f"action item {item}" if notice.action_item_id else f"the review of {review}"
    due = due_text(notice.due_at)
    verdict = (notice.verdict or "").replace("_", " ")
    lines: dict[str, str] = {
        "ReminderDue": f"Reminder: {subject} is due {due}",
        "ReviewOverdue": f"Overdue: the review of {review} was due {due}",
        "ActionItemOverdue": f"Overdue: action item {item} was due {due}",
        "Escalated": f"Escalated (level {notice.escalation_level}): {subject} is overdue since {due}",
        "EffectivenessCheckDue": f"Did it work? Check the changes made after {review}",
        "RemediationVerified": f"Remediation check: action item {item} is {verdict}",
        "VerificationRecorded": f"Verdict recorded: action item {item} is {verdict}",
        "ReviewPublished": f"Postmortem published: {review}",
    }
    return lines[notice.kind]


def facts(notice: Notice) -> tuple[tuple[str, str], ...]:
    shown = [
        ("Review", notice.title),
        ("Incident", notice.incident_key),
        ("Severity", notice.severity.value if notice.severity else None),
        ("Team", notice.team),
        ("Service", notice.service),
        ("Action item", notice.action_item_title or notice.action_item_id),
        ("Owner", notice.owner),
        ("Due", due_text(notice.due_at) or None),
        ("Escalated to", notice.escalation_target),
        ("Verdict", notice.verdict.replace("_", " ") if notice.verdict else None),
        ("Detail", notice.detail),
    ]
    return tuple((label, one_line(value)) for label, value in shown if value)


def item(notice: Notice, reason: str, link_base: str) -> Item:
    return Item(headline(notice), facts(notice), review_link(link_base, notice.review_id), one_line(reason))


def render(items: list[Item]) -> Message:
    """One message for one notice, or a digest of several (one person's reminders of one period)."""
    if not items:
        raise ValueError("a message needs at least one notice")
    if len(items) == 1:
        subject = items[0].headline
    else:
        subject = f"{len(items)} reminders: " + "; ".join(entry.headline for entry in items[:3])
    subject = one_line(subject, SUBJECT_CHARS)
    values = {"subject": subject, "items": items}
    return Message(
        subject=subject,
        text=_templates.get_template("message.txt").render(values),
        html=_templates.get_template("message.html").render(values),
        items=tuple(items),
    )
