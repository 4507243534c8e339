"""A notice: the part of an event a person is told about, in one shape whatever event it came from.

Follow-up events name their review's team and owner; review events mostly do not, so notify keeps its own small
record of each review (``ReviewFacts``) from ``reviews.events``: title, severity, team, service, owner and the people
who took part. A published postmortem is announced to those participants from that record.
"""

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from schemas import (
    ActionItemAdded,
    ActionItemOverdue,
    ActionItemUpdated,
    AnyFollowupEvent,
    AnyReviewEvent,
    EffectivenessCheckDue,
    Escalated,
    RemediationVerified,
    ReminderDue,
    ReviewOpened,
    ReviewOverdue,
    ReviewStatus,
    ReviewStatusChanged,
    ReviewUpdated,
    Severity,
    VerificationRecorded,
)

NoticeKind = Literal[
    "ReminderDue",
    "ReviewOverdue",
    "ActionItemOverdue",
    "Escalated",
    "EffectivenessCheckDue",
    "RemediationVerified",
    "ReviewPublished",
    "VerificationRecorded",
]
NOTICE_KINDS: tuple[str, ...] = get_args(NoticeKind)
# What a digest may hold back and group: nudges about dates, not news.
DIGESTIBLE: frozenset[str] = frozenset({"ReminderDue", "ReviewOverdue", "ActionItemOverdue"})
MAX_PARTICIPANTS = 200


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReviewFacts(Frozen):
    """What notify remembers of one review, from ``reviews.events``."""

    review_id: str
    title: str | None = None
    severity: Severity | None = None
    team: str | None = None
    service: str | None = None
    incident_key: str | None = None
    owner: str | None = None
    participants: tuple[str, ...] = ()
    version: int = 0


class Notice(Frozen):
    """One event, as notify tells it; stored with each pending message so it renders the same after a restart."""

    event_id: str
    kind: NoticeKind
    occurred_at: datetime
    review_id: str
    title: str
    severity: Severity | None = None
    team: str | None = None
    service: str | None = None
    incident_key: str | None = None
    owner: str | None = None
    verifier: str | None = None
    escalation_target: str | None = None
    escalation_level: int | None = None
    action_item_id: str | None = None
    action_item_title: str | None = None
    due_at: datetime | None = None
    verdict: str | None = None
    detail: str | None = None
    participants: tuple[str, ...] = ()


def _with_participant(people: tuple[str, ...], *names: str | None) -> tuple[str, ...]:
    added = list(people)
    for name in names:
        if name and name not in added and len(added) < MAX_PARTICIPANTS:
            added.append(name)
    return tuple(added)


def facts_after(facts: ReviewFacts | None, event: AnyReviewEvent) -> ReviewFacts | None:
    """The review's facts once ``event`` is applied; ``None`` when the event teaches nothing new.

    Idempotent: an event whose version is not newer than the facts' is ignored, so a redelivered one changes nothing.
    """
    known = facts or ReviewFacts(review_id=event.review_id)
    if event.version <= known.version and facts is not None:
        return None
    changes: dict[str, object] = {"version": event.version}
    if isinstance(event, ReviewOpened):
        changes |= {
            "title": event.title,
            "severity": event.severity,
            "team": event.team,
            "service": event.service,
            "incident_key": event.incident_key,
            "owner": event.owner,
            "participants": _with_participant(known.participants, event.owner),
        }
    elif isinstance(event, ReviewUpdated):
        if "owner" in event.changed:
            changes |= {"owner": event.owner, "participants": _with_participant(known.participants, event.owner)}
    elif isinstance(event, ReviewStatusChanged):
        changes["participants"] = _with_participant(known.participants, event.changed_by)
    elif isinstance(event, (ActionItemAdded, ActionItemUpdated)):
        verifier = event.verification.verifier if event.verification else None
        changes["participants"] = _with_participant(known.participants, event.owner, verifier)
    return known.model_copy(update=changes)


def _from_facts(facts: ReviewFacts | None) -> dict[str, object]:
    if facts is None:
        return {}
    return {"service": facts.service, "incident_key": facts.incident_key}


def review_notice(event: AnyReviewEvent, facts: ReviewFacts | None) -> Notice | None:
    """What a review event tells people: a published postmortem, or a recorded verdict; ``None`` for the rest."""
    known = facts or ReviewFacts(review_id=event.review_id)
    common: dict[str, object] = {
        "event_id": str(event.event_id),
        "occurred_at": event.occurred_at,
        "review_id": event.review_id,
        "title": known.title or f"Review {event.review_id}",
        "severity": known.severity,
        "team": known.team,
        "service": known.service,
        "incident_key": known.incident_key,
        "owner": known.owner,
    }
    if isinstance(event, ReviewStatusChanged) and event.to_status is ReviewStatus.PUBLISHED:
        return Notice.model_validate(common | {"kind": "ReviewPublished", "participants": known.participants})
    if isinstance(event, VerificationRecorded):
        detail = event.evidence.detail + (" The lesson was reopened." if event.reopened else "")
        return Notice.model_validate(
            common
            | {
                "kind": "VerificationRecorded",
                "action_item_id": event.action_item_id,
                "action_item_title": event.title,
                "verdict": event.verdict.value,
                "detail": detail.strip() or None,
            }
        )
    return None


def followup_notice(event: AnyFollowupEvent, facts: ReviewFacts | None) -> Notice:
    """Every follow-up event is worth telling someone about."""
    fields: dict[str, object] = {
        "event_id": str(event.event_id),
        "kind": event.type,
        "occurred_at": event.occurred_at,
        "review_id": event.review_id,
        "title": event.title,
        "severity": event.severity,
        "team": event.team,
        "owner": event.owner,
        **_from_facts(facts),
    }
    fields["incident_key"] = event.incident_key
    if isinstance(event, (ReminderDue, ActionItemOverdue, Escalated, RemediationVerified)):
        fields |= {"action_item_id": event.action_item_id, "action_item_title": event.action_item_title}
    if isinstance(event, (ReminderDue, ReviewOverdue, ActionItemOverdue, Escalated)):
        fields["due_at"] = event.due_at
    if isinstance(event, Escalated):
        fields |= {"escalation_target": event.target, "escalation_level": event.level}
    if isinstance(event, EffectivenessCheckDue):
        fields["detail"] = f"{len(event.done_action_item_ids)} action item(s) were finished; did they work?"
    if isinstance(event, RemediationVerified):
        fields |= {
            "verifier": event.verification.verifier,
            "verdict": event.verdict.value,
            "detail": event.evidence.detail or None,
        }
    return Notice.model_validate(fields)


def subject_of(notice: Notice) -> Literal["review", "action_item"]:
    return "action_item" if notice.action_item_id else "review"


def due_text(due_at: datetime | None) -> str:
    return due_at.strftime("%Y-%m-%d %H:%M UTC") if due_at else ""
