"""Recurrence: a closed incident that matches an earlier review's incident means the problem came back.

Matching is by fingerprint (what the paging tool says recurs) first, else by service and normalised title, within a
window before the new incident's resolution. Of the matches, the latest is the earlier occurrence: the one resolved
last, then the one opened last, then the greatest id (``occurrence_order``), so a run of occurrences forms a chain in
which each review names its predecessor and each predecessor gains one successor. The two reviews are linked both
ways. When every action item of the earlier review was done (and there was at least one), the remediation did not
hold: the new review is flagged ``recurred_after_remediation``. Items of the earlier review verified effective are
marked ``recurred_after_verification``: the verdict did not hold either.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from schemas import ActionItemStatus, ActionItemUpdated, ReviewRecurred, ReviewUpdated
from services.review.domain.record import Recurrence, Review, event_id_for
from services.review.domain.verification import mark_recurred_after_verification

MatchedOn = Literal["fingerprint", "service_and_title"]


@dataclass(frozen=True)
class RecurrenceGroup:
    """The reviews that are occurrences of one problem: one fingerprint, or one service and normalised title."""

    matched_on: MatchedOn
    fingerprint: str | None = None
    service: str | None = None
    title_key: str = ""

    @property
    def key(self) -> str:
        """Names the group, unambiguously (a fingerprint never reads as a service and title)."""
        if self.matched_on == "fingerprint":
            return json.dumps(["fingerprint", self.fingerprint])
        return json.dumps(["service_and_title", self.service, self.title_key])


def _to_millisecond(moment: datetime) -> datetime:
    # MongoDB keeps milliseconds: ordering on what is stored makes a review compare the same before and after storing.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def occurrence_order(resolved_at: datetime, created_at: datetime, review_id: str) -> tuple[datetime, datetime, str]:
    """Which of two occurrences is the later one: resolved later, then opened later, then the greater id."""
    return _to_millisecond(resolved_at), _to_millisecond(created_at), review_id


@dataclass(frozen=True)
class RecurrenceQuery:
    """What to look for among earlier reviews: fingerprint and/or service+title, resolved within [since, until]."""

    review_id: str
    fingerprint: str | None
    service: str | None
    title_key: str
    since: datetime
    until: datetime

    @property
    def groups(self) -> tuple[RecurrenceGroup, ...]:
        """Where to look, in order: the fingerprint's group, then the service and title's."""
        return groups_of(self.fingerprint, self.service, self.title_key)


def recurrence_query(review: Review, window: timedelta) -> RecurrenceQuery | None:
    """None when the incident has nothing to match on (no fingerprint, and no service or title to pair)."""
    facts = review.incident
    service_and_title = facts.service is not None and bool(review.title_key)
    if facts.fingerprint is None and not service_and_title:
        return None
    return RecurrenceQuery(
        review_id=review.id,
        fingerprint=facts.fingerprint,
        service=facts.service if service_and_title else None,
        title_key=review.title_key,
        since=facts.resolved_at - window,
        until=facts.resolved_at,
    )


def recurrence_groups(review: Review) -> tuple[RecurrenceGroup, ...]:
    """The groups ``review`` belongs to (where later occurrences look for it), in the order they are matched on."""
    return groups_of(review.incident.fingerprint, review.incident.service, review.title_key)


def groups_of(fingerprint: str | None, service: str | None, title_key: str) -> tuple[RecurrenceGroup, ...]:
    """The groups of an incident with these facts (as stored), in the order they are matched on."""
    groups: list[RecurrenceGroup] = []
    if fingerprint is not None:
        groups.append(RecurrenceGroup("fingerprint", fingerprint=fingerprint))
    if service is not None and title_key:
        groups.append(RecurrenceGroup("service_and_title", service=service, title_key=title_key))
    return tuple(groups)


def matched_on(new: Review, earlier: Review) -> MatchedOn:
    fingerprint = new.incident.fingerprint
    if fingerprint is not None and earlier.incident.fingerprint == fingerprint:
        return "fingerprint"
    return "service_and_title"


def remediated(review: Review) -> bool:
    """Every action item done, and there was at least one: the review's remediation was carried out."""
    return bool(review.action_items) and all(item.status == ActionItemStatus.DONE for item in review.action_items)


@dataclass(frozen=True)
class RecurrenceLink:
    new: Review
    recurred: ReviewRecurred
    earlier: Review
    earlier_updated: ReviewUpdated
    # One per earlier item verified effective, now marked recurred_after_verification (same version as the link).
    earlier_items_recurred: tuple[ActionItemUpdated, ...] = ()


def link_recurrence(new: Review, earlier: Review, now: datetime) -> RecurrenceLink:
    """Both reviews linked; the new one (still at its opening version) flagged, the earlier one a version higher.

    The earlier review gains only the new review's id (stored with a bounded ``$addToSet``, never a rewrite of it), and
    its action items when some verified effective are marked as recurred.
    """
    how = matched_on(new, earlier)
    after_remediation = remediated(earlier)
    linked_new = new.model_copy(
        update={
            "related_reviews": _with(new.related_reviews, earlier.id),
            "recurrence": Recurrence(
                earlier_review_id=earlier.id,
                earlier_incident_key=earlier.incident_key,
                matched_on=how,
                earlier_remediated=after_remediation,
            ),
            "recurred_after_remediation": after_remediation,
        }
    )
    version = earlier.version + 1
    linked_earlier = earlier.model_copy(
        update={
            "related_reviews": _with(earlier.related_reviews, new.id),
            "version": version,
            "updated_at": now,
            "updated_by": None,
        }
    )
    linked_earlier, items_recurred = mark_recurred_after_verification(linked_earlier, linked_new, now)
    return RecurrenceLink(
        new=linked_new,
        recurred=ReviewRecurred(
            event_id=event_id_for(new.id, "recurred", new.version),
            occurred_at=now,
            review_id=new.id,
            version=new.version,
            incident_key=new.incident_key,
            earlier_review_id=earlier.id,
            earlier_incident_key=earlier.incident_key,
            matched_on=how,
            recurred_after_remediation=after_remediation,
        ),
        earlier=linked_earlier,
        earlier_updated=ReviewUpdated(
            event_id=event_id_for(earlier.id, "updated", version),
            occurred_at=now,
            review_id=earlier.id,
            version=version,
            changed=("related_reviews",),
            owner=earlier.owner,
            due_at=earlier.due_at,
        ),
        earlier_items_recurred=items_recurred,
    )


def _with(ids: list[str], extra: str) -> list[str]:
    return ids if extra in ids else [*ids, extra]
