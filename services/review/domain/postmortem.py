"""A review as a Markdown postmortem document, to paste into a wiki or share by mail.

Pure and deterministic (no "exported at" stamp): the same review version always renders the same document.
Times are shown in UTC. People's text is kept as written; only table cells are escaped so a ``|`` or a line break
cannot break the table.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from schemas import ActionItemStatus
from services.review.domain.record import Review

_NOT_RECORDED = "_Not recorded._"
_ANALYSIS_TEXTS = (
    ("response_effectiveness", "Effectiveness of the response procedures"),
    ("detection_and_prevention", "Detection and prevention"),
    ("communication_and_coordination", "Communication and coordination"),
    ("resource_allocation", "Resource allocation"),
)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def _cell(text: str | None) -> str:
    if not text:
        return "-"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows),
    ]


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items] or [_NOT_RECORDED]


def _duration(review: Review) -> str:
    started = review.incident.started_at
    if started is None:
        return ""
    minutes = int((review.incident.resolved_at - started).total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    return f" (after {hours} h {rest} min)" if hours else f" (after {rest} min)"


def _facts(review: Review) -> list[str]:
    facts = review.incident
    incident = f"`{facts.incident_key}`" + (f" ([source]({facts.url}))" if facts.url else "")
    severity = facts.severity.value + (f" (source: {facts.source_severity})" if facts.source_severity else "")
    rows = [
        ("Incident", incident),
        ("Severity", severity),
        ("Service", facts.service or "-"),
        ("Team", facts.team or "-"),
        ("Started", _when(facts.started_at)),
        ("Resolved", _when(facts.resolved_at) + _duration(review)),
        ("Review status", review.status.value),
        ("Facilitator", review.owner or "-"),
        ("Review due", _when(review.due_at)),
    ]
    return _table(("", ""), rows)


def _analysis(review: Review) -> list[str]:
    analysis = review.analysis
    lines = ["## Analysis", "", "### What went well", "", *_bullets(analysis.what_went_well), ""]
    lines += ["### What did not go well", "", *_bullets(analysis.what_went_wrong), ""]
    for field, heading in _ANALYSIS_TEXTS:
        text: str | None = getattr(analysis, field)
        lines += [f"### {heading}", "", (text or "").strip() or _NOT_RECORDED, ""]
    return lines


def _action_items(review: Review) -> list[str]:
    if not review.action_items:
        return ["_None._"]
    rows = []
    for item in review.action_items:
        status = item.status.value
        if item.status == ActionItemStatus.WONT_DO and item.status_reason:
            status = f"wont_do: {item.status_reason}"
        ticket = f"[ticket]({item.ticket_url})" if item.ticket_url else "-"
        title = f"**{item.title}**" + (f"<br>{item.description}" if item.description else "")
        due = _when(item.due_at)
        rows.append((item.id, title, item.owner or "-", due, item.priority.value, item.category.value, status, ticket))
    header = ("ID", "Action", "Owner", "Due", "Priority", "Category", "Status", "Ticket")
    lines = _table(header, rows)
    if review.action_items_waiver is not None:
        waiver = review.action_items_waiver
        lines += ["", f"Unfinished action items were waived at closing by {waiver.by or '-'}: {waiver.reason}"]
    return lines


def _recurrence(review: Review) -> list[str]:
    lines = []
    if review.recurrence is not None:
        earlier = review.recurrence
        matched = "fingerprint" if earlier.matched_on == "fingerprint" else "service and title"
        lines += [
            f"This incident is a recurrence of `{earlier.earlier_incident_key}` (review "
            f"`{earlier.earlier_review_id}`, matched on {matched}).",
            "",
        ]
        if review.recurred_after_remediation:
            lines += ["**It came back although every action item of the earlier review was done.**", ""]
    lines += _bullets([f"`{review_id}`" for review_id in review.related_reviews]) if review.related_reviews else []
    return lines or ["_None._"]


def render_postmortem(review: Review) -> str:
    """The review as a Markdown document."""
    lines = [f"# Postmortem: {review.incident.title}", "", *_facts(review), ""]
    lines += ["## Participants", ""]
    lines += _bullets(
        [
            f"{person.name} ({person.function.value}" + (f", {person.role})" if person.role else ")")
            for person in review.participants
        ]
    )
    lines += ["", "## Timeline", ""]
    if review.timeline:
        moments = [
            (_when(entry.at), entry.kind, entry.message, entry.actor or "-", entry.origin) for entry in review.timeline
        ]
        lines += _table(("Time", "What", "Details", "Who", "Source"), moments)
    else:
        lines.append(_NOT_RECORDED)
    lines += ["", *_analysis(review)]
    gaps = [
        f"**{kind.capitalize()}:** {gap}"
        for kind in ("process", "technology", "training")
        for gap in getattr(review.gaps, kind)
    ]
    if gaps:
        lines += ["## Gaps", "", *_bullets(gaps), ""]
    lines += ["## Contributing factors", ""]
    lines += _bullets(
        [f"**{factor.category.value.capitalize()}:** {factor.description}" for factor in review.contributing_factors]
    )
    lines += ["", "## Recommendations", ""]
    if review.recommendations:
        lines += _bullets(review.recommendations)
    elif review.no_action_needed_reason:
        lines.append(f"No action needed: {review.no_action_needed_reason}")
    else:
        lines.append(_NOT_RECORDED)
    lines += ["", "## Action items", "", *_action_items(review), ""]
    lines += ["## Related reviews", "", *_recurrence(review), ""]
    if review.status_history:
        lines += ["## Review history", ""]
        changes = [
            (_when(change.at), change.from_status.value, change.to_status.value, change.by or "-", change.reason or "-")
            for change in review.status_history
        ]
        lines += [*_table(("When", "From", "To", "By", "Reason"), changes), ""]
    lines += [
        "---",
        "",
        f"Review `{review.id}`, version {review.version}. Policy decision: {review.policy_reason}.",
        "",
    ]
    return "\n".join(lines)
