"""One review's page: the incident's facts, every section editable in place, action items, workflow buttons.

Every form posts here and, once saved, comes back to the page (post/redirect/get). When a save is refused the page is
drawn again around what the person typed: next to the fields concerned for invalid input or a refused move (every
reason the service gave), and beside the other person's values when someone saved first (a stale version). Nothing
typed is lost and nothing is overwritten unseen: fields only the other person changed take their value, fields both
changed keep what was typed with theirs shown beside it, and the next save states the version now stored.
"""

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from schemas import ActionItemCategory, ActionItemPriority, ActionItemStatus, ReviewStatus
from schemas.verification import Comparison, Verdict, VerificationMethod
from services.review.access import role_for_move
from services.review.auth import ApiClient, Role
from services.review.domain.limits import RecordLimitError
from services.review.domain.record import FactorCategory, ParticipantFunction, Review
from services.review.domain.refusals import InvalidEditError, ReviewRefusedError
from services.review.domain.verification import NotTheVerifierError
from services.review.domain.workflow import (
    ACTION_ITEMS_EDITABLE,
    ALLOWED,
    SECTIONS_EDITABLE,
    Transition,
    approval_problems,
    is_overdue,
)
from services.review.ports import ReviewNotFoundError, StaleVersionError
from services.review.service import ReviewService
from services.review.web.formatting import status_name
from services.review.web.forms import (
    BLANK_ROWS,
    ITEM_FIELDS,
    TIMELINE_FIELDS,
    VERDICT_FIELDS,
    FormRefusal,
    Values,
    action_item_draft,
    action_item_edit,
    base_of,
    field_name,
    item_values,
    manual_verdict,
    plan_values,
    posted_sections,
    posted_values,
    section_edit,
    sections_values,
    timeline_entry,
    timeline_entry_edit,
    timeline_values,
)
from services.review.web.pages import Pages
from services.review.web.signed_in import SignedIn, must_have

SECTIONS, TIMELINE, NEW_ITEM, MOVE, VERDICT = "sections", "timeline", "new-item", "move", "verdict"
ENTRY = "entry-"  # an added timeline entry's form: ``entry-T-3``
EMPTY_ITEM: Values = {
    "title": "",
    "description": "",
    "owner": "",
    "due_at": "",
    "priority": "medium",
    "category": "other",
    "status": "open",
    "status_reason": "",
    "ticket_url": "",
    **plan_values(None),
}
EMPTY_VERDICT: Values = {"verdict": "", "evidence": "", "links": ""}

# Where each section the workflow names is shown on the page: a refused approval's reasons go next to these fields.
SECTION_FIELDS = {
    "analysis.what_went_well": "what_went_well",
    "analysis.what_went_wrong": "what_went_wrong",
    "analysis.response_effectiveness": "response_effectiveness",
    "analysis.detection_and_prevention": "detection_and_prevention",
    "analysis.communication_and_coordination": "communication_and_coordination",
    "analysis.resource_allocation": "resource_allocation",
    "contributing_factors": "factors",
    "no_action_needed_reason": "no_action_needed_reason",
    "recommendations?": "recommendations",
    "participants": "participants",
    "owner": "owner",
    "timeline": "timeline",
    "gaps": "gaps",
    "action_items": "action_items",
}


def fields_named(reason: str) -> list[str]:
    """The page's fields a reason names (in the record's own words: ``analysis.what_went_wrong``...)."""
    return [
        form_field
        for pattern, form_field in SECTION_FIELDS.items()
        if re.search(r"(?<![\w.])" + pattern.replace(".", r"\.") + r"(?![\w.])", reason)
    ]


MOVE_LABELS = {
    (ReviewStatus.OPEN, ReviewStatus.IN_REVIEW): "Start the review",
    (ReviewStatus.IN_REVIEW, ReviewStatus.APPROVED): "Approve",
    (ReviewStatus.IN_REVIEW, ReviewStatus.OPEN): "Send back to open",
    (ReviewStatus.APPROVED, ReviewStatus.PUBLISHED): "Publish",
    (ReviewStatus.APPROVED, ReviewStatus.IN_REVIEW): "Send back to in review",
    (ReviewStatus.PUBLISHED, ReviewStatus.CLOSED): "Close the review",
}


def move_label(current: ReviewStatus, to: ReviewStatus) -> str:
    if (current, to) in MOVE_LABELS:
        return MOVE_LABELS[(current, to)]
    return {
        ReviewStatus.CANCELLED: "Cancel the review",
        ReviewStatus.NOT_REQUIRED: "Declare not required",
        ReviewStatus.OPEN: "Reopen",
    }.get(to, f"Move to {status_name(to)}")


@dataclass
class FormState:
    """A form as drawn: its values, the values it was drawn from (``base``), the version read, what is wrong."""

    values: Values
    base: Values
    version: int
    errors: dict[str, str] = field(default_factory=dict)
    theirs: dict[str, str] = field(default_factory=dict)

    @property
    def base_json(self) -> str:
        return json.dumps(self.base, separators=(",", ":"))


@dataclass(frozen=True)
class Notice:
    kind: str  # saved, conflict, invalid, refused
    message: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class MoveChoice:
    to: str
    label: str
    reason_required: bool
    may_waive: bool


def shown(value: Any) -> str:
    """A form value as text, for showing the other person's version beside a field."""
    if isinstance(value, list):
        return "\n".join(", ".join(part for part in row.values() if part) for row in value) or "(empty)"
    return str(value) if value else "(empty)"


def merged(mine: Values, read: Values, current: Values) -> tuple[Values, dict[str, str]]:
    """Three-way merge of a form after a conflict: ``read`` is what the person started from, ``current`` is stored.

    A field only they changed keeps its text; one only the other person changed takes the stored value (so saving
    again cannot undo their change); one both changed keeps the text and shows the stored value beside it.
    """
    values = dict(mine)
    theirs: dict[str, str] = {}
    for name, now in current.items():
        if read.get(name) == now:
            continue
        if mine.get(name) == read.get(name):
            values[name] = now
        elif mine.get(name) != now:
            theirs[name] = shown(now)
    return values, theirs


@dataclass(frozen=True)
class Attempt:
    """One posted form: who sent it, for which review, what they typed and what the form was drawn from."""

    request: Request
    user: ApiClient
    review_id: str
    form: FormData
    form_id: str
    mine: Values
    read: Values
    moving_to: ReviewStatus | None = None


def _version(form: FormData) -> int:
    value = form.get("version")
    if isinstance(value, str) and value.isdecimal() and len(value) < 10:
        return int(value)
    raise FormRefusal(summary="The form did not say which version of the review it was drawn from; reload the page.")


class ReviewPage:
    def __init__(
        self, pages: Pages, signed_in: SignedIn, service: ReviewService, clock: Callable[[], datetime]
    ) -> None:
        self.pages, self.signed_in, self.service, self.clock = pages, signed_in, service, clock

    def routes(self) -> APIRouter:
        router = APIRouter(prefix="/review/{review_id}", include_in_schema=False)
        router.add_api_route("", self.show, methods=["GET"])
        router.add_api_route("/sections", self.save_sections, methods=["POST"])
        router.add_api_route("/timeline", self.add_timeline_entry, methods=["POST"])
        router.add_api_route("/timeline/{entry_id}", self.update_timeline_entry, methods=["POST"])
        router.add_api_route("/action-items", self.add_action_item, methods=["POST"])
        router.add_api_route("/action-items/{item_id}", self.update_action_item, methods=["POST"])
        router.add_api_route("/action-items/{item_id}/verdict", self.record_verdict, methods=["POST"])
        router.add_api_route("/move", self.move, methods=["POST"])
        return router

    async def show(self, request: Request, review_id: str, saved: str | None = None) -> Response:
        user = self.signed_in.reader(request)
        review = await self._review(review_id)
        if review is None:
            return self._not_found(request, user, review_id)
        notice = Notice("saved", "Saved.") if saved else None
        return await self._draw(request, user, review, {}, notice)

    async def save_sections(self, request: Request, review_id: str) -> Response:
        user, form = await self.signed_in.writer(request)
        attempt = Attempt(request, user, review_id, form, SECTIONS, posted_sections(form), base_of(form))

        async def save(version: int) -> None:
            edit = section_edit(attempt.mine, attempt.read)
            await self.service.edit_sections(review_id, version, edit, user.name)

        return await self._save(attempt, save)

    async def add_timeline_entry(self, request: Request, review_id: str) -> Response:
        user, form = await self.signed_in.writer(request)
        attempt = Attempt(request, user, review_id, form, TIMELINE, posted_values(form, TIMELINE_FIELDS), {})

        async def save(version: int) -> None:
            await self.service.add_timeline_entry(review_id, version, timeline_entry(attempt.mine), user.name)

        return await self._save(attempt, save)

    async def update_timeline_entry(self, request: Request, review_id: str, entry_id: str) -> Response:
        """Saves an added entry's changed fields, or removes it when its remove box is ticked."""
        user, form = await self.signed_in.writer(request)
        mine = posted_values(form, TIMELINE_FIELDS)
        attempt = Attempt(request, user, review_id, form, f"{ENTRY}{entry_id}", mine, base_of(form))

        async def save(version: int) -> None:
            if form.get("remove") == "yes":
                await self.service.remove_timeline_entry(review_id, entry_id, version, user.name)
            else:
                edit = timeline_entry_edit(attempt.mine, attempt.read)
                await self.service.edit_timeline_entry(review_id, entry_id, version, edit, user.name)

        return await self._save(attempt, save)

    async def add_action_item(self, request: Request, review_id: str) -> Response:
        user, form = await self.signed_in.writer(request)
        attempt = Attempt(request, user, review_id, form, NEW_ITEM, posted_values(form, ITEM_FIELDS), {})

        async def save(version: int) -> None:
            await self.service.add_action_item(review_id, version, action_item_draft(attempt.mine), user.name)

        return await self._save(attempt, save)

    async def update_action_item(self, request: Request, review_id: str, item_id: str) -> Response:
        user, form = await self.signed_in.writer(request)
        form_id = f"item-{item_id}"
        attempt = Attempt(request, user, review_id, form, form_id, posted_values(form, ITEM_FIELDS), base_of(form))

        async def save(version: int) -> None:
            edit = action_item_edit(attempt.mine, attempt.read)
            await self.service.update_action_item(review_id, item_id, version, edit, user.name)

        return await self._save(attempt, save)

    async def record_verdict(self, request: Request, review_id: str, item_id: str) -> Response:
        """A verifier's verdict on a done item with a manual verification; the service decides who may."""
        user, form = await self.signed_in.writer(request)
        mine = posted_values(form, VERDICT_FIELDS)
        attempt = Attempt(request, user, review_id, form, f"{VERDICT}-{item_id}", mine, {})

        async def save(version: int) -> None:
            admin = user.role.can(Role.ADMIN)
            verdict = manual_verdict(attempt.mine)
            await self.service.record_manual_verdict(review_id, item_id, version, verdict, by=user.name, admin=admin)

        return await self._save(attempt, save)

    async def move(self, request: Request, review_id: str) -> Response:
        user, form = await self.signed_in.writer(request)
        to_text, reason = form.get("to"), form.get("reason")
        waive = form.get("waive") == "yes"
        if not isinstance(to_text, str) or to_text not in set(ReviewStatus):
            attempt = Attempt(request, user, review_id, form, MOVE, {}, {})
            return await self._again(attempt, {}, Notice("refused", "No such status."), 422)
        to = ReviewStatus(to_text)
        must_have(user, role_for_move(to, waive_open_action_items=waive))
        mine = {"reason": reason if isinstance(reason, str) else ""}
        attempt = Attempt(request, user, review_id, form, f"{MOVE}-{to}", mine, {}, moving_to=to)

        async def save(version: int) -> None:
            request = Transition(to=to, reason=mine["reason"] or None, waive_open_action_items=waive)
            await self.service.transition(review_id, version, request, user.name)

        return await self._save(attempt, save)

    async def _save(self, attempt: Attempt, save: Callable[[int], Awaitable[None]]) -> Response:
        try:
            await save(_version(attempt.form))
        except FormRefusal as refusal:
            state = FormState(attempt.mine, attempt.read, _form_version(attempt.form), refusal.errors)
            summary = refusal.summary or "Not saved: correct the fields marked below."
            return await self._again(attempt, {attempt.form_id: state}, Notice("invalid", summary), 422)
        except StaleVersionError as stale:
            return await self._conflict(attempt, stale)
        except ReviewNotFoundError:
            return self._not_found(attempt.request, attempt.user, attempt.review_id)
        except ReviewRefusedError as refusal:
            return await self._refused(attempt, refusal)
        anchor = MOVE if attempt.moving_to is not None else attempt.form_id
        return RedirectResponse(f"/review/{attempt.review_id}?saved={anchor}#{anchor}", status_code=303)

    async def _refused(self, attempt: Attempt, refusal: ReviewRefusedError) -> Response:
        state = FormState(attempt.mine, attempt.read, _form_version(attempt.form))
        reasons = [refusal.message]
        if attempt.moving_to == ReviewStatus.APPROVED:
            review = await self._review(attempt.review_id)
            if review is not None and approval_problems(review):
                reasons = approval_problems(review)  # the workflow's own list: every reason, one by one
        if isinstance(refusal, InvalidEditError):
            state.errors[field_name((refusal.field,))] = refusal.message
        elif isinstance(refusal, RecordLimitError):
            state.errors[refusal.limit] = refusal.message
        problems: dict[str, list[str]] = {}
        for reason in reasons:
            for name in fields_named(reason):
                problems.setdefault(name, []).append(reason)
        verb = "Not moved" if attempt.moving_to is not None else "Not saved"
        notice = Notice("refused", f"{verb}: the service refused it.", tuple(reasons))
        status = 403 if isinstance(refusal, NotTheVerifierError) else 409  # as the API answers it
        return await self._again(attempt, {attempt.form_id: state}, notice, status, problems=problems)

    async def _conflict(self, attempt: Attempt, stale: StaleVersionError) -> Response:
        review = await self._review(attempt.review_id)
        if review is None:
            return self._not_found(attempt.request, attempt.user, attempt.review_id)
        current = self._form_values(review, attempt.form_id)
        if current is not None:
            values, theirs = merged(attempt.mine, attempt.read, current)
            state = FormState(values, current, review.version, theirs=theirs)
        else:  # an addition or a move: it overwrites nothing, so it is kept as typed, to try on the version now stored
            state = FormState(attempt.mine, attempt.read, review.version)
        by = review.updated_by or "someone"
        message = (
            f"Not saved: {by} saved this review while you were editing (you read version {stale.read_version}, it "
            f"is now version {stale.current_version}). What you typed is kept below; where they changed a field "
            "you changed too, their value is shown beside it. Merge, then save again."
        )
        states = {attempt.form_id: state}
        return await self._draw(attempt.request, attempt.user, review, states, Notice("conflict", message), status=409)

    async def _again(
        self,
        attempt: Attempt,
        states: dict[str, FormState],
        notice: Notice,
        status: int,
        *,
        problems: dict[str, list[str]] | None = None,
    ) -> Response:
        review = await self._review(attempt.review_id)
        if review is None:
            return self._not_found(attempt.request, attempt.user, attempt.review_id)
        return await self._draw(attempt.request, attempt.user, review, states, notice, status=status, problems=problems)

    async def _review(self, review_id: str) -> Review | None:
        try:
            return await self.service.get(review_id)
        except ReviewNotFoundError:
            return None

    def _not_found(self, request: Request, user: ApiClient, review_id: str) -> Response:
        return self.pages.render(
            request, "refused.html", user=user, status=404, title="No such review", detail=f"No review {review_id}."
        )

    @staticmethod
    def _form_values(review: Review, form_id: str) -> Values | None:
        if form_id == SECTIONS:
            return sections_values(review)
        if form_id.startswith("item-"):
            item = review.action_item(form_id.removeprefix("item-"))
            return item_values(item) if item is not None else None
        if form_id.startswith(ENTRY):
            entry = review.timeline_entry(form_id.removeprefix(ENTRY))
            return timeline_values(entry) if entry is not None else None
        return None

    def moves(self, user: ApiClient, review: Review) -> list[MoveChoice]:
        """Exactly the moves the workflow allows from here and the person's role may make."""
        if not user.role.can(Role.EDITOR):
            return []
        choices = [
            MoveChoice(
                to=str(to),
                label=move_label(review.status, to),
                reason_required=move.reason_required,
                may_waive=to == ReviewStatus.CLOSED
                and user.role.can(role_for_move(to, waive_open_action_items=True))
                and any(item.unfinished for item in review.action_items),
            )
            for to, move in ALLOWED[review.status].items()
            if user.role.can(role_for_move(to))
        ]
        return sorted(choices, key=lambda choice: choice.reason_required)

    def verdict_forms(self, user: ApiClient, review: Review, states: dict[str, FormState]) -> dict[str, FormState]:
        """A manual verdict form for each item the service would take a verdict on from this person now."""
        if not user.role.can(Role.EDITOR):
            return {}
        admin = user.role.can(Role.ADMIN)
        return {
            item.id: states.get(f"{VERDICT}-{item.id}") or FormState(dict(EMPTY_VERDICT), {}, review.version)
            for item in review.action_items
            if self.service.may_record_verdict(review, item.id, by=user.name, admin=admin)
        }

    async def _draw(
        self,
        request: Request,
        user: ApiClient,
        review: Review,
        states: dict[str, FormState],
        notice: Notice | None,
        *,
        status: int = 200,
        problems: dict[str, list[str]] | None = None,
    ) -> Response:
        may_edit = user.role.can(Role.EDITOR)
        fresh = sections_values(review)
        sections = states.get(SECTIONS) or FormState(fresh, fresh, review.version)
        items = {
            item.id: states.get(f"item-{item.id}") or FormState(item_values(item), item_values(item), review.version)
            for item in review.action_items
        }
        entries = {
            entry.id: states.get(f"{ENTRY}{entry.id}")
            or FormState(timeline_values(entry), timeline_values(entry), review.version)
            for entry in review.timeline
            if entry.origin == "added"
        }
        now = self.clock()
        followup = await self.service.followup_of(review)
        return self.pages.render(
            request,
            "review.html",
            user=user,
            status=status,
            review=review,
            now=now,
            overdue=is_overdue(review, now),
            sections_editable=may_edit and review.status in SECTIONS_EDITABLE,
            items_editable=may_edit and review.status in ACTION_ITEMS_EDITABLE,
            sections=sections,
            participant_rows=len(sections.values["participants"]) + BLANK_ROWS,
            factor_rows=len(sections.values["factors"]) + BLANK_ROWS,
            timeline=states.get(TIMELINE) or FormState(dict.fromkeys(TIMELINE_FIELDS, ""), {}, review.version),
            entries=entries,
            new_item=states.get(NEW_ITEM) or FormState(dict(EMPTY_ITEM), {}, review.version),
            items=items,
            move_states={key: state for key, state in states.items() if key.startswith(MOVE)},
            moves=self.moves(user, review),
            followup=followup,
            verdict_forms=self.verdict_forms(user, review, states),
            verdicts=list(Verdict),
            methods=list(VerificationMethod),
            comparisons=list(Comparison),
            notice=notice,
            problems=problems or {},
            functions=list(ParticipantFunction),
            factor_categories=list(FactorCategory),
            priorities=list(ActionItemPriority),
            item_categories=list(ActionItemCategory),
            item_statuses=list(ActionItemStatus),
        )


def _form_version(form: FormData) -> int:
    try:
        return _version(form)
    except FormRefusal:
        return 0
