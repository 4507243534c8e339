"""How refusals become HTTP answers: the domain's refusals, stale versions, unknown reviews and the API's own.

Every refusal answers with a problem body ``{"detail", "code", ...}`` (``code`` stable, ``detail`` for people),
except 422, which keeps FastAPI's validation shape so clients handle every 422 the same way.
"""

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.failures import is_outage
from services.review.domain.limits import RecordLimitError
from services.review.domain.refusals import (
    InvalidEditError,
    ReviewRefusedError,
    UnknownActionItemError,
    UnknownTimelineEntryError,
)
from services.review.domain.verification import NotTheVerifierError
from services.review.ports import ReviewNotFoundError, StaleVersionError

# Every answer of the review app says what it is: browsers must not guess another type from the content.
NOSNIFF = ("X-Content-Type-Options", "nosniff")


class Problem(BaseModel):
    """Why a request was refused. ``code`` is stable; ``detail`` is for people."""

    detail: str
    code: str
    current_version: int | None = Field(default=None, description="With code stale_version: the version to re-read")
    limit: str | None = Field(default=None, description="With a 413: which limit was passed")
    maximum: int | None = Field(default=None, description="With a 413: the limit's value")


class BadRequest(BaseModel):
    detail: str


class ApiProblemError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers, self.extra = status, code, detail, headers or {}, extra


class BodyTooLargeError(StarletteHTTPException):
    """The request body passed ``REVIEW_MAX_BODY_BYTES`` while it streamed in.

    An ``HTTPException`` because it is raised from inside FastAPI's body reading, which lets only those through
    (anything else becomes a 400).
    """

    def __init__(self, maximum: int) -> None:
        super().__init__(413, f"the request body is larger than {maximum} bytes")
        self.maximum = maximum


def problem_doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("No token, or an unknown one"),
    403: problem_doc("The token's role may not do this"),
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {**AUTH_ERRORS, 404: problem_doc("No such review")}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    400: {"model": BadRequest, "description": "The body could not be parsed as JSON"},
    409: problem_doc(
        "Stale version (code stale_version, with current_version), or the workflow refuses the change (e.g. code "
        "imported_timeline_entry: a timeline entry imported from the incident tool is read-only)"
    ),
    413: problem_doc(
        "The body is larger than REVIEW_MAX_BODY_BYTES (code body_too_large), or the change would make the review "
        "larger than a review may be (code record_limit_exceeded; limit names which)"
    ),
    428: problem_doc("The version you read was not stated (If-Match header or version field)"),
}


def etag(version: int) -> str:
    return f'"{version}"'


def invalid(loc: tuple[str, ...], message: str) -> ApiProblemError:
    # Shaped like FastAPI's own validation errors, so clients handle every 422 the same way.
    return ApiProblemError(422, "invalid", message, errors=[{"loc": list(loc), "msg": message, "type": "invalid"}])


def unauthenticated(detail: str) -> ApiProblemError:
    return ApiProblemError(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def body_too_large(maximum: int) -> ApiProblemError:
    # The rest of the body is never read: the connection cannot be reused for another request.
    return ApiProblemError(
        413,
        "body_too_large",
        f"the request body is larger than {maximum} bytes",
        headers={"Connection": "close"},
        limit="max_body_bytes",
        maximum=maximum,
    )


def as_problem(exc: Exception) -> ApiProblemError:
    """The answer to a refusal; ``TypeError`` for anything that is not one."""
    match exc:
        case ApiProblemError():
            return exc
        case BodyTooLargeError():
            return body_too_large(exc.maximum)
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
        case ReviewRefusedError():
            return _domain_refusal(exc)
    raise TypeError(f"not a refusal: {exc!r}")


def _domain_refusal(refusal: ReviewRefusedError) -> ApiProblemError:
    match refusal:
        case RecordLimitError():
            return ApiProblemError(413, refusal.code, refusal.message, limit=refusal.limit, maximum=refusal.maximum)
        case UnknownActionItemError() | UnknownTimelineEntryError():
            return ApiProblemError(404, refusal.code, refusal.message)
        case NotTheVerifierError():
            return ApiProblemError(403, refusal.code, refusal.message)
        case InvalidEditError():
            return invalid(("body", refusal.field), refusal.message)
    return ApiProblemError(409, refusal.code, refusal.message)


def problem_json(problem: ApiProblemError) -> JSONResponse:
    if problem.status == 422:
        return JSONResponse({"detail": problem.extra["errors"]}, status_code=422, headers=problem.headers)
    body = {"detail": problem.detail, "code": problem.code, **problem.extra}
    return JSONResponse(body, status_code=problem.status, headers=problem.headers)


async def problem_response(_: Request, exc: Exception) -> JSONResponse:
    """Turns refusals (ours and the domain's) into HTTP answers."""
    return problem_json(as_problem(exc))


async def internal_error_response(_: Request, exc: Exception) -> JSONResponse:
    """The answer to a bug (Starlette logs it). Sent by the outermost middleware, past ours: so nosniff is set here.

    A database that is unreachable or did not answer in time is not a bug: 503 with ``Retry-After``, nothing written.
    """
    if is_outage(exc):
        body = {"detail": "the database did not answer in time; nothing was written, try again", "code": "unavailable"}
        return JSONResponse(body, status_code=503, headers={**dict([NOSNIFF]), "Retry-After": "5"})
    body = {"detail": "internal error", "code": "internal_error"}
    return JSONResponse(body, status_code=500, headers=dict([NOSNIFF]))


ERROR_HANDLERS = (
    ApiProblemError,
    BodyTooLargeError,
    ReviewNotFoundError,
    StaleVersionError,
    ReviewRefusedError,
)
