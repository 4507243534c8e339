"""The Markdown postmortem: a complete review renders to the document in tests/fixtures/review/, byte for byte."""

import os
import re
from datetime import UTC, datetime

from markdown_it import MarkdownIt

from schemas import ActionItemCategory, ActionItemPriority, ActionItemStatus, ReviewStatus, Severity, Verdict
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    TimelineEntryDraft,
    add_action_item,
    add_timeline_entry,
)
from services.review.domain.postmortem import render_postmortem
from services.review.domain.record import Recurrence, Review
from services.review.domain.verification import ManualVerdict, Recorded, record_judged_verdict, record_manual_verdict
from services.review.domain.workflow import Transition, transition
from tests.support.fixtures import FIXTURES, fixture
from tests.support.verification import remediation_verified
from tests.unit.review.builders import NOW, edited, incident, item_updated, opened

GOLDEN = "postmortem_complete.md"


def complete_review() -> Review:
    review = opened(
        incident(
            "PD-7781",
            severity=Severity.HIGH,
            title="Checkout | payments API returning 502s",
            service="payments-api",
            team="payments",
            url="https://pagerduty.example/incidents/PD-7781",
            fingerprint="payments-502",
        )
    )
    review = add_timeline_entry(
        review,
        TimelineEntryDraft(
            at=datetime(2026, 11, 27, 9, 31, tzinfo=UTC),
            kind="mitigated",
            message="Rolled back\nrelease 4.2",
            actor="erin",
        ),
        by="erin",
        now=NOW,
    )[0]
    review = edited(
        review,
        owner="alice",
        participants=[
            {"name": "Alice", "function": "operations", "role": "facilitator"},
            {"name": "Sam", "function": "security"},
        ],
        analysis={
            "what_went_well": ["Paging reached the on-call engineer within a minute"],
            "what_went_wrong": ["The connection pool limit was lowered by the release"],
            "response_effectiveness": "The rollback runbook worked but took 19 minutes to find.",
            "detection_and_prevention": "Detected by the 5xx alert; a canary would have caught it.",
        },
        gaps={"process": ["Releases skip the canary on Fridays"]},
        contributing_factors=[
            {"category": "technology", "description": "Pool size came from a stale default"},
            {"category": "process", "description": "No canary stage for config changes"},
        ],
        recommendations=["Canary every config change", "Alert on pool saturation"],
    )
    for title, category, priority in (
        ("Add a canary stage for config changes", ActionItemCategory.PROCESS, ActionItemPriority.HIGH),
        ("Alert on pool saturation", ActionItemCategory.MONITORING_ALERTING, ActionItemPriority.MEDIUM),
        ("Rewrite the payments client", ActionItemCategory.OTHER, ActionItemPriority.LOW),
    ):
        draft = ActionItemDraft(
            title=title,
            category=category,
            priority=priority,
            owner="erin",
            due_at=datetime(2026, 12, 15, 17, 0, tzinfo=UTC),
            ticket_url="https://tracker.example/PAY-1" if priority is ActionItemPriority.HIGH else None,
        )
        review = add_action_item(review, draft, by="alice", now=NOW)[0]
    review = item_updated(review, "AI-2", ActionItemEdit(status=ActionItemStatus.DONE), by="erin")
    review = item_updated(
        review,
        "AI-3",
        ActionItemEdit(status=ActionItemStatus.WONT_DO, status_reason="Too big | tracked in RFC-12"),
        by="x",
    )
    for to, reason in ((ReviewStatus.IN_REVIEW, None), (ReviewStatus.APPROVED, None), (ReviewStatus.PUBLISHED, None)):
        review = transition(review, Transition(to=to, reason=reason), by="alice", now=NOW)[0]
    review = transition(
        review,
        Transition(to=ReviewStatus.CLOSED, reason="Canary work is on the Q1 roadmap", waive_open_action_items=True),
        by="carol",
        now=NOW,
    )[0]
    return review.model_copy(
        update={
            "related_reviews": ["11111111-2222-3333-4444-555555555555"],
            "recurrence": Recurrence(
                earlier_review_id="11111111-2222-3333-4444-555555555555",
                earlier_incident_key="pagerduty:PD-7001",
                matched_on="fingerprint",
                earlier_remediated=True,
            ),
            "recurred_after_remediation": True,
        }
    )


def test_a_complete_review_renders_as_the_golden_document() -> None:
    document = render_postmortem(complete_review())
    if os.environ.get("UPDATE_GOLDEN"):  # UPDATE_GOLDEN=1 pytest ...: rewrite after a deliberate change
        (FIXTURES / "review" / GOLDEN).write_text(document, encoding="utf-8")
    assert document == fixture("review", GOLDEN).decode("utf-8")


def test_an_empty_review_says_what_is_not_recorded() -> None:
    document = render_postmortem(opened(incident(timeline=(), started_at=None)))
    assert document.startswith("# Postmortem: Orders stuck in pending\n")
    assert "## Timeline\n\n_Not recorded._" in document
    assert "## Action items\n\n_None._" in document
    assert "## Review history" not in document
    assert "| Resolved | 2026-11-27 10:00 UTC |" in document


HOSTILE = (
    "<script>alert(1)</script> [x](javascript:alert(1)) ![i](javascript:alert(2))\n# Injected heading\n- injected item"
)


def hostile_review() -> Review:
    """Every field people or vendors write holds Markdown and HTML meant to take over the document."""
    review = opened(
        incident(
            "PD-1`<b>",
            title=HOSTILE,
            service="<img src=x onerror=alert(1)>",
            team="a | b\n|---|",
            url="javascript:alert(1)",
        )
    )
    review = add_timeline_entry(
        review,
        TimelineEntryDraft(at=NOW, kind="note\n# Kind", message=HOSTILE, actor="<i>x</i>"),
        by="erin",
        now=NOW,
    )[0]
    review = edited(
        review,
        owner="[owner](javascript:alert(1))",
        participants=[{"name": "# Name", "function": "it", "role": HOSTILE}],
        analysis={"what_went_well": [HOSTILE], "response_effectiveness": "1. one\n\n    indented\n```\nfence"},
        gaps={"process": [HOSTILE]},
        contributing_factors=[{"category": "process", "description": HOSTILE}],
        recommendations=["- nested", "> quoted\n===", HOSTILE],
    )
    draft = ActionItemDraft(
        title="x](javascript:alert(1))", description=HOSTILE, ticket_url="https://t.example/a)(javascript:alert(1)"
    )
    return add_action_item(review, draft, by="alice", now=NOW)[0]


def rendered_html(document: str) -> str:
    html: str = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(document)
    return html


def test_what_people_wrote_cannot_add_html_links_or_structure_to_the_postmortem() -> None:
    review = hostile_review()
    document = render_postmortem(review)
    html = rendered_html(document)

    assert "<script" not in html
    assert "<img" not in html
    assert "<i>" not in html
    assert "<b>" not in html
    # The only link is ours, to the ticket, percent-encoded so it cannot end early; the vendor's URL is no link.
    assert re.findall(r'(?:href|src)="([^"]*)"', html) == ["https://t.example/a%29%28javascript:alert%281%29"]
    # Only our headings and lists: no field value opened a heading, a list item, a quote or a code block.
    assert re.findall(r"<h1>(.*?)</h1>", html) == [
        "Postmortem: &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1)) ![i](javascript:alert(2))"
        "<br># Injected heading<br>- injected item"
    ]
    assert "Injected heading</h" not in html
    assert not re.search(r"<h[1-6]>(Kind|Name)", html)
    assert "<blockquote>" not in html
    assert "<pre>" not in html
    assert "<ol>" not in html
    assert "<ul>\n<li>\n<ul>" not in html  # no list nested in a bullet
    assert html.count("<table>") == 3  # facts, timeline, action items: the team's "|---|" made no table of its own
    # Each value stays on its own line of the document: its line breaks became <br>.
    assert "\n# Injected heading" not in document
    assert "\n- injected item" not in document
    assert "| Team | a \\| b<br>\\|---\\| |" in document
    assert "(source: `javascript:alert(1)`)" in document


def test_link_targets_are_http_only() -> None:
    review = opened(incident(url="HTTPS://pagerduty.example/incidents/1 <x>"))
    document = render_postmortem(review)
    assert "([source](HTTPS://pagerduty.example/incidents/1%20%3Cx%3E))" in document
    for scheme in ("javascript:alert(1)", "data:text/html,<script>", "vbscript:x", "//evil.example/x"):
        document = render_postmortem(opened(incident(url=scheme)))
        assert "[source](" not in document


def test_each_verification_shows_its_plan_verdict_and_evidence_inertly() -> None:
    hostile_query = "rate(x[5m]) | `y` <script>alert(1)</script>"
    review = opened()
    for draft in (
        ActionItemDraft.model_validate(
            {
                "title": "Cap retries",
                "owner": "erin",
                "status": "done",
                "verification": {"method": "metric", "query": hostile_query, "comparison": "<", "threshold": 0.5},
            }
        ),
        ActionItemDraft.model_validate(
            {"title": "Runbook", "status": "done", "verification": {"method": "manual", "verifier": "eve"}}
        ),
        ActionItemDraft(title="No check"),
    ):
        review = add_action_item(review, draft, by="alice", now=NOW)[0]
    judged = record_judged_verdict(
        review,
        remediation_verified(review.id, review.incident_key, verdict=Verdict.NOT_EFFECTIVE, attempt=2),
        now=NOW,
        new_item_required=True,
    )
    assert isinstance(judged, Recorded)
    verdict = ManualVerdict.model_validate(
        {
            "verdict": "effective",
            "evidence": "Drill passed <img src=x onerror=alert(1)>\n# heading",
            "links": ["https://wiki.example/drill(1)", "http://x.example/a"],
        }
    )
    manual = record_manual_verdict(
        judged.review, "AI-2", verdict, by="eve", admin=False, now=NOW, new_item_required=True
    )
    document = render_postmortem(manual.review)
    html = rendered_html(document)

    assert "## Verification" in document
    assert "**The lesson was reopened 2026-11-27 10:01 UTC: AI-1 was verified not effective** (still open)." in document
    assert html.count("<table>") == 4  # facts, timeline, action items, verification
    assert "<script" not in html
    assert "<img" not in html
    assert "\n# heading" not in document
    section = document.split("## Verification")[1].splitlines()
    row_1 = next(line for line in section if line.startswith("| AI-1 |"))
    assert "metric: `rate(x[5m]) \\| `" not in row_1  # the query is one code span, its pipe escaped
    assert "**not_effective**" in row_1
    assert "judged by followup/prometheus" in row_1
    assert "attempt 2" in row_1
    assert "observed 9.5 (baseline 12)" in row_1
    row_2 = next(line for line in section if line.startswith("| AI-2 |"))
    assert "manual: judged by a person" in row_2
    assert "**effective**" in row_2
    assert "[evidence 1](https://wiki.example/drill%281%29)" in row_2
    assert "[evidence 2](http://x.example/a)" in row_2
    assert not any(line.startswith("| AI-3 |") for line in section)
    assert re.findall(r'href="([^"]*)"', html) == ["https://wiki.example/drill%281%29", "http://x.example/a"]
