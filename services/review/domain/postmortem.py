"""A review as a Markdown postmortem document, to paste into a wiki or share by mail.

Pure and deterministic (no "exported at" stamp): the same review version always renders the same document.
Times are shown in UTC.

The document is ours; the values in it are not (people, vendors, the policy file wrote them), and it is rendered
by wikis and chat tools that trust Markdown. So every value is neutralised before it goes in: raw HTML is escaped,
Markdown's inline syntax is backslash-escaped (a value cannot make a link, an image or emphasis), a line break
becomes ``<br>`` so the value stays inside its paragraph, bullet or cell, a value cannot start a block (heading,
list item, quote, fence) where a line starts, and links are made only to http(s) addresses, percent-encoded.
"""

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from schemas import ActionItemStatus
from schemas.verification import VerificationMethod, VerificationPlan
from services.review.domain.record import ActionItem, Review, VerificationResult

_NOT_RECORDED = "_Not recorded._"
_ANALYSIS_TEXTS = (
    ("response_effectiveness", "Effectiveness of the response procedures"),
    ("detection_and_prevention", "Detection and prevention"),
    ("communication_and_coordination", "Communication and coordination"),
    ("resource_allocation", "Resource allocation"),
)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Inline syntax a value could use to make a link, an image, emphasis, code or strikethrough, and escapes themselves.
_INLINE = re.compile(r"([\\`*_\[\]~!])")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# What starts a block when it starts a line: heading, quote, list item, thematic break, setext underline, fence.
_BLOCK_START = re.compile(r"^(\d{1,9}(?=[.)])|)([#>+\-=|.)])")
_SAFE_URL = re.compile(r"^https?://", re.IGNORECASE)


def _text(value: str | None, *, in_table: bool = False) -> str:
    """A value someone else wrote, as inert Markdown text on one line (line breaks as ``<br>``)."""
    text = _INLINE.sub(r"\\\1", (value or "").translate(_HTML))
    if in_table:
        text = text.replace("|", "\\|")
    lines = [line.strip() for line in _LINE_BREAK.split(text)]
    return "<br>".join(_BLOCK_START.sub(r"\1\\\2", line, count=1) for line in lines)


def _code(value: str, *, in_table: bool = False) -> str:
    """A value as a code span (shown as typed, nothing in it interpreted), on one line."""
    text = _LINE_BREAK.sub(" ", value)
    if in_table:
        text = text.replace("|", "\\|")  # GitHub's tables split cells on | even inside code spans
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _link(label: str, url: str | None) -> str | None:
    """A link with our label to an http(s) address, percent-encoded so it cannot end early; None for others."""
    if url is None or not _SAFE_URL.match(url.strip()):
        return None
    target = quote(url.strip(), safe="/:?#@!$&*+,;=%-._~")
    return f"[{label}]({target})"


def _cell(text: str | None) -> str:
    """A table cell already made safe (``_text(..., in_table=True)``, ``_code``, our own words), or ``-``."""
    return text or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows),
    ]


def _texts(values: list[str]) -> list[str]:
    return [_text(value) for value in values]


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
    incident = _code(facts.incident_key, in_table=True)
    if facts.url:
        source = _link("source", facts.url) or "source: " + _code(facts.url, in_table=True)
        incident += f" ({source})"
    severity = facts.severity.value
    if facts.source_severity:
        severity += f" (source: {_text(facts.source_severity, in_table=True)})"
    rows = [
        ("Incident", incident),
        ("Severity", severity),
        ("Service", _text(facts.service, in_table=True)),
        ("Team", _text(facts.team, in_table=True)),
        ("Started", _when(facts.started_at)),
        ("Resolved", _when(facts.resolved_at) + _duration(review)),
        ("Review status", review.status.value),
        ("Facilitator", _text(review.owner, in_table=True)),
        ("Review due", _when(review.due_at)),
    ]
    return _table(("", ""), rows)


def _analysis(review: Review) -> list[str]:
    analysis = review.analysis
    lines = ["## Analysis", "", "### What went well", "", *_bullets(_texts(analysis.what_went_well)), ""]
    lines += ["### What did not go well", "", *_bullets(_texts(analysis.what_went_wrong)), ""]
    for field, heading in _ANALYSIS_TEXTS:
        text: str | None = getattr(analysis, field)
        lines += [f"### {heading}", "", _text((text or "").strip()) or _NOT_RECORDED, ""]
    return lines


def _action_items(review: Review) -> list[str]:
    if not review.action_items:
        return ["_None._"]
    rows = []
    for item in review.action_items:
        status = item.status.value
        if item.status == ActionItemStatus.WONT_DO and item.status_reason:
            status = f"wont_do: {_text(item.status_reason, in_table=True)}"
        ticket = _link("ticket", item.ticket_url) or "-"
        title = f"**{_text(item.title, in_table=True)}**"
        if item.description:
            title += f"<br>{_text(item.description, in_table=True)}"
        owner = _text(item.owner, in_table=True)
        due = _when(item.due_at)
        row = (
            _text(item.id, in_table=True),
            title,
            owner,
            due,
            item.priority.value,
            item.category.value,
            status,
            ticket,
        )
        rows.append(row)
    header = ("ID", "Action", "Owner", "Due", "Priority", "Category", "Status", "Ticket")
    lines = _table(header, rows)
    if review.action_items_waiver is not None:
        waiver = review.action_items_waiver
        by, reason = _text(waiver.by) or "-", _text(waiver.reason)
        lines += ["", f"Unfinished action items were waived at closing by {by}: {reason}"]
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _plan(plan: VerificationPlan) -> str:
    """What the item promises to prove, as table cell text."""
    if plan.method is VerificationMethod.METRIC:
        what = f"{_code(plan.query or '', in_table=True)} {plan.comparison} {_number(plan.threshold)}"
    elif plan.method is VerificationMethod.ALERT:
        matchers = ", ".join(f"{name}={value}" for name, value in sorted(plan.alert_matchers.items()))
        what = "no " + _code(plan.alert_name or "", in_table=True) + " alert"
        what += f" ({_code(matchers, in_table=True)})" if matchers else ""
    elif plan.method is VerificationMethod.RECURRENCE:
        what = "no recurrence of this incident"
    else:
        what = "judged by a person"
    window = f", over {plan.window_seconds // 3600} h" if plan.window_seconds else ""
    return f"{plan.method.value}: {what}{window}"


def _evidence(result: VerificationResult) -> str:
    evidence = result.evidence
    parts = [f"judged by {_text(evidence.judged_by, in_table=True)} at {_when(evidence.judged_at)}"]
    if result.attempt is not None:
        parts.append(f"attempt {result.attempt}")
    if evidence.window_start is not None and evidence.window_end is not None:
        parts.append(f"window {_when(evidence.window_start)} to {_when(evidence.window_end)}")
    if evidence.expression:
        parts.append("asked " + _code(evidence.expression, in_table=True))
    if evidence.observed is not None or evidence.baseline is not None:
        parts.append(f"observed {_number(evidence.observed)} (baseline {_number(evidence.baseline)})")
    if evidence.detail:
        parts.append(_text(evidence.detail, in_table=True))
    links = [_link(f"evidence {n}", url) or _code(url, in_table=True) for n, url in enumerate(evidence.links, 1)]
    return "; ".join(parts + links)


def _verification_row(item: ActionItem, plan: VerificationPlan) -> tuple[str, ...]:
    result = item.verification_result
    verdict = f"**{result.verdict.value}**" if result is not None else "not judged yet"
    if item.recurred_after_verification is not None:
        verdict += f"<br>the incident recurred afterwards ({_code(item.recurred_after_verification.incident_key)})"
    return (
        _text(item.id, in_table=True),
        _plan(plan),
        _text(plan.verifier or item.owner, in_table=True),
        verdict,
        _evidence(result) if result is not None else "-",
    )


def _verification(review: Review) -> list[str]:
    rows = [_verification_row(item, item.verification) for item in review.action_items if item.verification]
    if not rows:
        return []
    lines = ["## Verification", ""]
    reopening = review.reopening
    if reopening is not None:
        state = f"closed again {_when(reopening.settled_at)}" if reopening.settled_at else "still open"
        lines += [f"**The lesson was reopened {_when(reopening.at)}: {_text(reopening.reason)}** ({state}).", ""]
    header = ("ID", "How success is measured", "Verifier", "Verdict", "Evidence")
    return [*lines, *_table(header, rows), ""]


def _recurrence(review: Review) -> list[str]:
    lines = []
    if review.recurrence is not None:
        earlier = review.recurrence
        matched = "fingerprint" if earlier.matched_on == "fingerprint" else "service and title"
        lines += [
            f"This incident is a recurrence of {_code(earlier.earlier_incident_key)} (review "
            f"{_code(earlier.earlier_review_id)}, matched on {matched}).",
            "",
        ]
        if review.recurred_after_remediation:
            lines += ["**It came back although every action item of the earlier review was done.**", ""]
    lines += _bullets([_code(review_id) for review_id in review.related_reviews]) if review.related_reviews else []
    return lines or ["_None._"]


def render_postmortem(review: Review) -> str:
    """The review as a Markdown document."""
    lines = [f"# Postmortem: {_text(review.incident.title)}", "", *_facts(review), ""]
    lines += ["## Participants", ""]
    lines += _bullets(
        [
            f"{_text(person.name)} ({person.function.value}" + (f", {_text(person.role)})" if person.role else ")")
            for person in review.participants
        ]
    )
    lines += ["", "## Timeline", ""]
    if review.timeline:
        moments = [
            (
                _when(entry.at),
                _text(entry.kind, in_table=True),
                _text(entry.message, in_table=True),
                _text(entry.actor, in_table=True),
                entry.origin,
            )
            for entry in review.timeline
        ]
        lines += _table(("Time", "What", "Details", "Who", "Source"), moments)
    else:
        lines.append(_NOT_RECORDED)
    lines += ["", *_analysis(review)]
    gaps = [
        f"**{kind.capitalize()}:** {_text(gap)}"
        for kind in ("process", "technology", "training")
        for gap in getattr(review.gaps, kind)
    ]
    if gaps:
        lines += ["## Gaps", "", *_bullets(gaps), ""]
    lines += ["## Contributing factors", ""]
    lines += _bullets(
        [
            f"**{factor.category.value.capitalize()}:** {_text(factor.description)}"
            for factor in review.contributing_factors
        ]
    )
    lines += ["", "## Recommendations", ""]
    if review.recommendations:
        lines += _bullets(_texts(review.recommendations))
    elif review.no_action_needed_reason:
        lines.append(f"No action needed: {_text(review.no_action_needed_reason)}")
    else:
        lines.append(_NOT_RECORDED)
    lines += ["", "## Action items", "", *_action_items(review), ""]
    lines += _verification(review)
    lines += ["## Related reviews", "", *_recurrence(review), ""]
    if review.status_history:
        lines += ["## Review history", ""]
        changes = [
            (
                _when(change.at),
                change.from_status.value,
                change.to_status.value,
                _text(change.by, in_table=True),
                _text(change.reason, in_table=True),
            )
            for change in review.status_history
        ]
        lines += [*_table(("When", "From", "To", "By", "Reason"), changes), ""]
    lines += [
        "---",
        "",
        f"Review {_code(review.id)}, version {review.version}. Policy decision: {_text(review.policy_reason)}.",
        "",
    ]
    return "\n".join(lines)
