"""The review HTTP API: read, complete and move lessons-learned reviews. Thin: parse, authorise, call the service.

Every write states the version it read, in ``If-Match`` (as the ``ETag`` of a read gives it: ``"3"``) or in the
body's ``version``. A write made on an older version is refused with 409 and the current version, so nobody
overwrites a change they have not seen. Writes need a bearer token with the ``editor`` role (some moves ``admin``);
reads need ``viewer``, or nothing when ``REVIEW_ANONYMOUS_READS`` is on. Who may do what is ``access``; how a
refusal is answered, ``http_problems``; what is checked before a body is read, ``request_guard``.
"""

import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from schemas import ReviewStatus, Severity
from services.review.access import API_PREFIX, Access, role_for_move
from services.review.auth import ApiTokens, Caller, Role
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    Reason,
    SectionEdit,
    TimelineEntryDraft,
    TimelineEntryEdit,
)
from services.review.domain.followup_view import FollowupView
from services.review.domain.record import Review
from services.review.domain.verification import ManualVerdict
from services.review.domain.workflow import Transition
from services.review.http_problems import (
    AUTH_ERRORS,
    ERROR_HANDLERS,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiProblemError,
    etag,
    internal_error_response,
    invalid,
    problem_doc,
    problem_response,
)
from services.review.ports import ReviewFilter
from services.review.request_guard import RequestGuard
from services.review.service import ReviewService

MAX_PAGE = 500

# ``"3"`` as the ETag gives it; ``W/"3"`` and a bare ``3`` are understood too.
_ETAG_PATTERN = r'^\s*(?:W/)?"?([0-9]{1,9})"?\s*$'
_ETAG = re.compile(_ETAG_PATTERN)


def read_version(if_match: str | None, body_version: int | None) -> int:
    """The version the writer read, from ``If-Match`` or the body; both may be given if they agree."""
    from_header = None
    if if_match is not None:
        found = _ETAG.match(if_match)
        if found is None:
            raise invalid(("header", "If-Match"), 'must be the version you read, as the ETag gives it: "3"')
        from_header = int(found.group(1))
    if from_header is not None and body_version is not None and from_header != body_version:
        raise invalid(("body", "version"), f"disagrees with If-Match ({from_header})")
    version = from_header if from_header is not None else body_version
    if version is None:
        raise ApiProblemError(
            428, "version_required", "state the version you read: If-Match header or the body's version field"
        )
    return version


class Versioned(BaseModel):
    version: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="The version you read. Required unless If-Match states it; a write stating neither gets 428.",
    )


class SectionEditRequest(SectionEdit, Versioned):
    pass


class TimelineEntryRequest(TimelineEntryDraft, Versioned):
    pass


class TimelineEntryEditRequest(TimelineEntryEdit, Versioned):
    pass


class ActionItemRequest(ActionItemDraft, Versioned):
    pass


class ActionItemEditRequest(ActionItemEdit, Versioned):
    pass


class ManualVerdictRequest(ManualVerdict, Versioned):
    pass


class TransitionRequest(Versioned):
    model_config = ConfigDict(extra="forbid")

    to: ReviewStatus
    reason: Reason | None = None
    waive_open_action_items: bool = Field(
        default=False, description="Close although action items are unfinished (admin only; needs a reason)"
    )


Edit = TypeVar("Edit", bound=BaseModel)


def _domain_edit(body: Versioned, model: type[Edit]) -> Edit:
    """The request without its version, keeping which fields were given (an edit only touches those)."""
    return model.model_validate(body.model_dump(exclude_unset=True, exclude={"version"}))


ReviewIdPath = Annotated[str, Path(min_length=1, max_length=100, description="The review's id")]
EntryIdPath = Annotated[str, Path(min_length=1, max_length=20, description='The timeline entry\'s id: "T-3"')]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        pattern=_ETAG_PATTERN,
        description=(
            'The version you read, as the ETag of the read gave it: `"3"` (`W/"3"` and `3` are understood). '
            "Every write must state it, here or in the body's `version` (both: they must agree): a write stating "
            "neither is refused with 428, one stating an older version with 409 and the current version."
        ),
        examples=['"3"'],
    ),
]


TIMELINE_ENTRY_ERRORS = {
    **WRITE_ERRORS,
    404: problem_doc("No such review, or no such timeline entry in it (code unknown_timeline_entry)"),
}


def _answer(response: Response, review: Review) -> Review:
    response.headers["ETag"] = etag(review.version)
    return review


def review_router(service: ReviewService, access: Access, *, public_base_url: str | None) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["reviews"])
    _read_routes(router, service, access.viewer, public_base_url)
    _write_routes(router, service, access.editor)
    return router


def next_page_link(public_base_url: str | None, request: Request, *, offset: int, limit: int) -> str:
    """The ``Link`` to the next page: from the configured public address, never from the caller's Host header
    (which anyone can set). Without one the link is relative, which clients resolve against the URL they called."""
    query = request.url.include_query_params(offset=offset, limit=limit).query
    base = (public_base_url or "").rstrip("/")
    return f'<{base}{API_PREFIX}?{query}>; rel="next"'


def _read_routes(router: APIRouter, service: ReviewService, viewer: Any, public_base_url: str | None) -> None:
    @router.get("", response_model=list[Review], responses=AUTH_ERRORS, dependencies=[viewer])
    async def list_reviews(
        *,
        request: Request,
        response: Response,
        status: Annotated[list[ReviewStatus] | None, Query(description="Any of these statuses")] = None,
        severity: Annotated[list[Severity] | None, Query(description="Any of these severities")] = None,
        service_name: Annotated[str | None, Query(alias="service", max_length=200)] = None,
        team: Annotated[str | None, Query(max_length=200)] = None,
        overdue: Annotated[
            bool | None, Query(description="Past the due date while still open or in review (true), or not (false)")
        ] = None,
        q: Annotated[
            str | None,
            Query(
                max_length=200,
                # MongoDB refuses a pattern with a NUL byte: refuse it here, as bad input.
                pattern=r"^[^\x00]*$",
                description="Text the incident title contains",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[Review]:
        """Reviews, newest first. The total number matching is in ``X-Total-Count``; the next page in ``Link``."""
        where = ReviewFilter(
            statuses=status or (),
            severities=severity or (),
            service=service_name,
            team=team,
            overdue=overdue,
            title_contains=q,
        )
        reviews, total = await service.find(where, limit=limit, offset=offset)
        response.headers["X-Total-Count"] = str(total)
        if offset + len(reviews) < total:
            response.headers["Link"] = next_page_link(public_base_url, request, offset=offset + limit, limit=limit)
        return reviews

    @router.get("/{review_id}", response_model=Review, responses=READ_ERRORS, dependencies=[viewer])
    async def get_review(*, review_id: ReviewIdPath, response: Response) -> Review:
        """One review; its ``ETag`` is the version to state when you write."""
        return _answer(response, await service.get(review_id))

    @router.get("/{review_id}/followup", response_model=FollowupView, responses=READ_ERRORS, dependencies=[viewer])
    async def get_followup(*, review_id: ReviewIdPath) -> FollowupView:
        """What follow-up did and will do for this review, as review learned it from ``followups.events``: reminders
        sent, overdue since, escalation level and target, the effectiveness check, the latest verification attempts,
        and the done items still awaiting a verdict."""
        return await service.followup(review_id)

    @router.get(
        "/{review_id}/export.md",
        response_class=Response,
        responses={
            **READ_ERRORS,
            200: {"content": {"text/markdown": {"schema": {"type": "string"}}}, "description": "The postmortem"},
        },
        dependencies=[viewer],
    )
    async def export_review(*, review_id: ReviewIdPath) -> Response:
        """The review as a Markdown postmortem document."""
        review, document = await service.export_markdown(review_id)
        return Response(
            document,
            media_type="text/markdown; charset=utf-8",
            headers={
                "ETag": etag(review.version),
                "Content-Disposition": f'inline; filename="postmortem-{review.id}.md"',
            },
        )


def _write_routes(router: APIRouter, service: ReviewService, editor: Any) -> None:
    @router.patch("/{review_id}", response_model=Review, responses=WRITE_ERRORS)
    async def edit_review(
        *,
        review_id: ReviewIdPath,
        body: SectionEditRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Change sections (owner, due date, participants, analysis, factors, recommendations...). Fields left out
        stay as they are; ``analysis`` and ``gaps`` are merged field by field; a list replaces the list."""
        version = read_version(if_match, body.version)
        edited = await service.edit_sections(review_id, version, _domain_edit(body, SectionEdit), who.name)
        return _answer(response, edited)

    @router.post("/{review_id}/timeline", response_model=Review, status_code=201, responses=WRITE_ERRORS)
    async def add_timeline_entry(
        *,
        review_id: ReviewIdPath,
        body: TimelineEntryRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Add a moment to the incident's timeline (kept in time order, marked as added)."""
        version = read_version(if_match, body.version)
        entry = _domain_edit(body, TimelineEntryDraft)
        return _answer(response, await service.add_timeline_entry(review_id, version, entry, who.name))

    @router.patch("/{review_id}/timeline/{entry_id}", response_model=Review, responses=TIMELINE_ENTRY_ERRORS)
    async def edit_timeline_entry(
        *,
        review_id: ReviewIdPath,
        entry_id: EntryIdPath,
        body: TimelineEntryEditRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Change a timeline entry people added (fields left out stay as they are); an imported one is refused with
        409, code ``imported_timeline_entry``."""
        version = read_version(if_match, body.version)
        edit = _domain_edit(body, TimelineEntryEdit)
        return _answer(response, await service.edit_timeline_entry(review_id, entry_id, version, edit, who.name))

    @router.delete("/{review_id}/timeline/{entry_id}", response_model=Review, responses=TIMELINE_ENTRY_ERRORS)
    async def remove_timeline_entry(
        *,
        review_id: ReviewIdPath,
        entry_id: EntryIdPath,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Remove a timeline entry people added; the version read goes in ``If-Match``. An imported entry is refused
        with 409, code ``imported_timeline_entry``."""
        version = read_version(if_match, None)
        return _answer(response, await service.remove_timeline_entry(review_id, entry_id, version, who.name))

    @router.post("/{review_id}/action-items", response_model=Review, status_code=201, responses=WRITE_ERRORS)
    async def add_action_item(
        *,
        review_id: ReviewIdPath,
        body: ActionItemRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Add an action item; its id (``AI-<n>``) is assigned by the service."""
        version = read_version(if_match, body.version)
        draft = _domain_edit(body, ActionItemDraft)
        return _answer(response, await service.add_action_item(review_id, version, draft, who.name))

    @router.patch("/{review_id}/action-items/{item_id}", response_model=Review, responses=WRITE_ERRORS)
    async def edit_action_item(
        *,
        review_id: ReviewIdPath,
        item_id: Annotated[str, Path(min_length=1, max_length=20)],
        body: ActionItemEditRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Change an action item: status (``wont_do`` needs ``status_reason``), owner, due date, ticket..."""
        version = read_version(if_match, body.version)
        edit = _domain_edit(body, ActionItemEdit)
        return _answer(response, await service.update_action_item(review_id, item_id, version, edit, who.name))

    @router.post(
        "/{review_id}/action-items/{item_id}/verdict",
        response_model=Review,
        responses={
            **WRITE_ERRORS,
            403: problem_doc(
                "The token's role may not do this, or the caller may not judge this item (code not_the_verifier: "
                "its owner, or not the verifier its verification names; an admin may)"
            ),
        },
    )
    async def record_verdict(
        *,
        review_id: ReviewIdPath,
        item_id: Annotated[str, Path(min_length=1, max_length=20)],
        body: ManualVerdictRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Record the verdict on a done action item whose verification is ``manual``, with the evidence (text and
        links). The item's owner may not judge their own remediation; when its verification names a verifier, only
        they may; an admin always may. ``not_effective`` reopens the lesson."""
        version = read_version(if_match, body.version)
        verdict = _domain_edit(body, ManualVerdict)
        admin = who.client is not None and who.client.role.can(Role.ADMIN)
        recorded = await service.record_manual_verdict(
            review_id, item_id, version, verdict, by=who.name or "anonymous", admin=admin
        )
        return _answer(response, recorded)

    @router.post("/{review_id}/transitions", response_model=Review, responses=WRITE_ERRORS)
    async def move_review(
        *,
        review_id: ReviewIdPath,
        body: TransitionRequest,
        response: Response,
        who: Annotated[Caller, editor],
        if_match: IfMatch = None,
    ) -> Review:
        """Move the review along its workflow; a refused move answers 409 with the reason."""
        version = read_version(if_match, body.version)
        needed = role_for_move(body.to, waive_open_action_items=body.waive_open_action_items)
        if who.client is not None and not who.client.role.can(needed):
            raise ApiProblemError(
                403, "forbidden", "cancelling, declaring not required and waiving action items need the admin role"
            )
        request = Transition(to=body.to, reason=body.reason, waive_open_action_items=body.waive_open_action_items)
        return _answer(response, await service.transition(review_id, version, request, who.name))


def install_review_api(
    app: FastAPI,
    service: ReviewService,
    tokens: ApiTokens,
    *,
    anonymous_reads: bool,
    max_body_bytes: int,
    public_base_url: str | None = None,
) -> None:
    """Mount the routes, the request guard (see ``request_guard``) and the handlers that turn refusals into answers."""
    access = Access(tokens, anonymous_reads=anonymous_reads)
    app.include_router(review_router(service, access, public_base_url=public_base_url))
    app.add_middleware(RequestGuard, access=access, max_body_bytes=max_body_bytes, routes=app.router.routes)
    for error in ERROR_HANDLERS:
        app.add_exception_handler(error, problem_response)
    app.add_exception_handler(Exception, internal_error_response)
