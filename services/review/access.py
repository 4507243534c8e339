"""Who may call which route: the role each request needs, and the bearer-token check that decides.

Reads (``GET``, ``HEAD``) need ``viewer``, or nothing when ``REVIEW_ANONYMOUS_READS`` is on; every other method on
``/reviews`` needs ``editor`` (some workflow moves ``admin``, decided by the route once it knows the move).
``OPTIONS`` needs nothing: it tells only which methods a path has. The same check runs twice for a write: in the
request guard, before the body is read, and in the route's dependency, which also documents it in OpenAPI.
"""

from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas import ReviewStatus
from services.review.auth import ApiTokens, Caller, Role
from services.review.http_problems import ApiProblemError, unauthenticated

API_PREFIX = "/reviews"
READ_METHODS = frozenset({"GET", "HEAD"})


def role_needed(method: str, path: str) -> Role | None:
    """The role a request needs, before any route is chosen; None when the API does not decide (other paths)."""
    if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
        return None
    if method == "OPTIONS":
        return None
    return Role.VIEWER if method in READ_METHODS else Role.EDITOR


# Moves that stop a review or leave work unfinished on purpose: governance, so an admin's decision.
_ADMIN_MOVES = frozenset({ReviewStatus.CANCELLED, ReviewStatus.NOT_REQUIRED})


def role_for_move(to: ReviewStatus, *, waive_open_action_items: bool = False) -> Role:
    """The role a workflow move needs: the API and the web UI both ask this one rule."""
    return Role.ADMIN if waive_open_action_items or to in _ADMIN_MOVES else Role.EDITOR


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, as FastAPI's ``HTTPBearer`` reads it."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Access:
    """The token check, and the FastAPI dependencies that apply it: ``viewer`` for reads, ``editor`` for writes."""

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

    def authorise(self, token: str | None, role: Role) -> Caller:
        """The caller holding ``token`` if it may act with ``role``; else a 401 or 403 problem."""
        if token is None:
            if role == Role.VIEWER and self._anonymous_reads:
                return Caller(None)
            raise unauthenticated(f"send a bearer token with the {role} role or higher")
        client = self._tokens.identify(token)
        if client is None:
            raise unauthenticated("unknown token")
        if not client.role.can(role):
            raise ApiProblemError(403, "forbidden", f"role {client.role} may not do this: {role} needed")
        return Caller(client)

    def _needs(self, role: Role) -> Any:
        bearer = self._bearer

        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
            return self.authorise(credentials.credentials if credentials else None, role)

        return Depends(check)
