"""The review HTTP API: read, complete and move lessons-learned reviews. Thin: parse, authorise, call the service.

Every write states the version it read, in ``If-Match`` (as the ``ETag`` of a read gives it: ``"3"``) or in the
body's ``version``. A write made on an older version is refused with 409 and the current version, so nobody
overwrites a change they have not seen. Writes need a bearer token with the ``editor`` role (some moves ``admin``);
reads need ``viewer``, or nothing when ``REVIEW_ANONYMOUS_READS`` is on.
"""

import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from schemas import ReviewStatus, Severity
from services.review.auth import ApiTokens, Caller, Role
from services.review.domain.editing import ActionItemDraft, ActionItemEdit, Reason, SectionEdit, TimelineEntryDraft
from services.review.domain.record import Review
from services.review.domain.refusals import InvalidEditError, ReviewRefusedError, UnknownActionItemError
from services.review.domain.workflow import Transition
from services.review.repository import ReviewFilter, ReviewNotFoundError, StaleVersionError
from services.review.service import ReviewService

MAX_PAGE = 500


class Problem(BaseModel):
    """Why a request was refused. ``code`` is stable; ``detail`` is for people."""

    detail: str
    code: str
    current_version: int | None = Field(default=None, description="With code stale_version: the version to re-read")


class BadRequest(BaseModel):
    detail: str


class ApiProblemError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers, self.extra = status, code, detail, headers or {}, extra


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("No token, or an unknown one"),
    403: _problem("The token's role may not do this"),
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {**AUTH_ERRORS, 404: _problem("No such review")}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    400: {"model": BadRequest, "description": "The body could not be parsed as JSON"},
    409: _problem("Stale version (code stale_version, with current_version), or the workflow refuses the change"),
    428: _problem("The version you read was not stated (If-Match header or version field)"),
}


def etag(version: int) -> str:
    return f'"{version}"'


_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


def read_version(if_match: str | None, body_version: int | None) -> int:
    """The version the writer read, from ``If-Match`` or the body; both may be given if they agree."""
    from_header = None
    if if_match is not None:
        found = _ETAG.match(if_match)
        if found is None:
            raise _invalid(("header", "If-Match"), 'must be the version you read, as the ETag gives it: "3"')
        from_header = int(found.group(1))
    if from_header is not None and body_version is not None and from_header != body_version:
        raise _invalid(("body", "version"), f"disagrees with If-Match ({from_header})")
    version = from_header if from_header is not None else body_version
    if version is None:
        raise ApiProblemError(
            428, "version_required", "state the version you read: If-Match header or the body's version field"
        )
    return version


def _invalid(loc: tuple[str, ...], message: str) -> ApiProblemError:
    # Shaped like FastAPI's own validation errors, so clients handle every 422 the same way.
    return ApiProblemError(422, "invalid", message, errors=[{"loc": list(loc), "msg": message, "type": "invalid"}])


async def problem_response(_: Request, exc: Exception) -> JSONResponse:
    """Turns refusals (ours and the domain's) into HTTP answers."""
    problem = _as_problem(exc)
    if problem.status == 422:
        return JSONResponse({"detail": problem.extra["errors"]}, status_code=422, headers=problem.headers)
    body = {"detail": problem.detail, "code": problem.code, **problem.extra}
    return JSONResponse(body, status_code=problem.status, headers=problem.headers)


def _as_problem(exc: Exception) -> ApiProblemError:
    match exc:
        case ApiProblemError():
            return exc
        case ReviewNotFoundError():
            return ApiProblemError(404, "not_found", f"no review {exc}")
        case StaleVersionError():
            return ApiProblemError(
                409,
                "stale_version",
                f"review {exc.review_id} changed since you read it (you read version {exc.read_version}, it is now "
                f"{exc.current_version}); read it again and reapply your change",
                headers={"ETag": etag(exc.current_version)},
                current_version=exc.current_version,
            )
        case UnknownActionItemError():
            return ApiProblemError(404, exc.code, exc.message)
        case InvalidEditError():
            return _invalid(("body", exc.field), exc.message)
        case ReviewRefusedError():
            return ApiProblemError(409, exc.code, exc.message)
    raise TypeError(f"not a refusal: {exc!r}")


ERROR_HANDLERS = (
    ApiProblemError,
    ReviewNotFoundError,
    StaleVersionError,
    ReviewRefusedError,
)


class Versioned(BaseModel):
    version: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="The version you read (or send If-Match instead)"
    )


class SectionEditRequest(SectionEdit, Versioned):
    pass


class TimelineEntryRequest(TimelineEntryDraft, Versioned):
    pass


class ActionItemRequest(ActionItemDraft, Versioned):
    pass


class ActionItemEditRequest(ActionItemEdit, Versioned):
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
IfMatch = Annotated[str | None, Header(alias="If-Match", description='The version you read, as the ETag gave it: "3"')]


class Access:
    """The FastAPI dependencies that let a caller in: ``viewer`` for reads, ``editor`` for writes."""

    def __init__(self, tokens: ApiTokens, *, anonymous_reads: bool) -> None:
        self._tokens = tokens
        self._anonymous_reads = anonymous_reads
        self._bearer = HTTPBearer(
            auto_error=False,
            scheme_name="ApiToken",
            description="A token from REVIEW_API_TOKENS: `Authorization: Bearer <token>`",
        )
        self.viewer = self._needs(Role.VIEWER)
        self.editor = self._needs(Role.EDITOR)

    def _needs(self, role: Role) -> Any:
        bearer = self._bearer

        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
            if credentials is None:
                if role == Role.VIEWER and self._anonymous_reads:
                    return Caller(None)
                raise _unauthenticated(f"send a bearer token with the {role} role or higher")
            client = self._tokens.identify(credentials.credentials)
            if client is None:
                raise _unauthenticated("unknown token")
            if not client.role.can(role):
                raise ApiProblemError(403, "forbidden", f"role {client.role} may not do this: {role} needed")
            return Caller(client)

        return Depends(check)


def _answer(response: Response, review: Review) -> Review:
    response.headers["ETag"] = etag(review.version)
    return review


def review_router(service: ReviewService, access: Access) -> APIRouter:
    router = APIRouter(prefix="/reviews", tags=["reviews"])
    _read_routes(router, service, access.viewer)
    _write_routes(router, service, access.editor)
    return router


def _read_routes(router: APIRouter, service: ReviewService, viewer: Any) -> None:
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
            following = request.url.include_query_params(offset=offset + limit, limit=limit)
            response.headers["Link"] = f'<{following}>; rel="next"'
        return reviews

    @router.get("/{review_id}", response_model=Review, responses=READ_ERRORS, dependencies=[viewer])
    async def get_review(*, review_id: ReviewIdPath, response: Response) -> Review:
        """One review; its ``ETag`` is the version to state when you write."""
        return _answer(response, await service.get(review_id))

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
        governance = body.waive_open_action_items or body.to in (ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED)
        if governance and who.client is not None and not who.client.role.can(Role.ADMIN):
            raise ApiProblemError(
                403, "forbidden", "cancelling, declaring not required and waiving action items need the admin role"
            )
        request = Transition(to=body.to, reason=body.reason, waive_open_action_items=body.waive_open_action_items)
        return _answer(response, await service.transition(review_id, version, request, who.name))


def _unauthenticated(detail: str) -> ApiProblemError:
    return ApiProblemError(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def install_review_api(app: FastAPI, service: ReviewService, tokens: ApiTokens, *, anonymous_reads: bool) -> None:
    """Mount the routes and the handlers that turn refusals into answers."""
    app.include_router(review_router(service, Access(tokens, anonymous_reads=anonymous_reads)))
    for error in ERROR_HANDLERS:
        app.add_exception_handler(error, problem_response)
