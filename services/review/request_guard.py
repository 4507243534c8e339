"""The review app's edge, as a pure ASGI middleware around every route: checks that must come before FastAPI's.

In order, each refusing before the next costs anything:

1. ``OPTIONS``: answered here with the path's ``Allow`` header (204), or 404 for no such path;
2. a write to ``/reviews`` (any method but GET and HEAD): the bearer token and its role, 401 or 403, body unread;
3. ``Content-Length`` above ``REVIEW_MAX_BODY_BYTES``: 413, nothing read;
4. the body, counted as the route reads it (chunked requests declare no length): 413 once past the limit, so
   no more than the limit (and one network chunk) is ever held.

Why a middleware and not dependencies: FastAPI reads and parses the body before it runs any dependency, so a
token check there comes after the damage; and a middleware sees every route, documented or not. Every answer
(ours, the routes', errors) also gets ``X-Content-Type-Options: nosniff``, and a 405 the full ``Allow`` list.
"""

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.review.access import Access, bearer_token, role_needed
from services.review.auth import Role
from services.review.http_problems import (
    NOSNIFF,
    ApiProblemError,
    BodyTooLargeError,
    body_too_large,
    problem_json,
)

_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods some route answers at this path (OPTIONS included), or none when no route has the path.

    Asked of the routes themselves, one method at a time: included routers are matched lazily, so their routes are
    not listed anywhere to read the methods from.
    """
    methods = [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return sorted([*methods, "OPTIONS"]) if methods else []


def _declares_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


class RequestGuard:
    def __init__(self, app: ASGIApp, *, access: Access, max_body_bytes: int, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.routes = routes  # the app's route list (read per request: routes may be added after this is built)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer[NOSNIFF[0]] = NOSNIFF[1]
                if message["status"] == 405:
                    answer["Allow"] = ", ".join(allowed_methods(self.routes, scope))
            await send(message)

        if scope["method"] == "OPTIONS":
            allowed = allowed_methods(self.routes, scope)
            if allowed:
                await Response(status_code=204, headers={"Allow": ", ".join(allowed)})(scope, receive, send_marked)
                return
        try:
            self._refuse_before_body(scope, headers)
        except ApiProblemError as refused:
            if _declares_body(headers):  # left unread: the connection cannot carry another request
                refused.headers["Connection"] = "close"
            await problem_json(refused)(scope, receive, send_marked)
            return
        await self._pass_counted(scope, receive, send_marked)

    def _refuse_before_body(self, scope: Scope, headers: Headers) -> None:
        role = role_needed(scope["method"], scope["path"])
        if role is not None and role is not Role.VIEWER:
            self.access.authorise(bearer_token(headers.get("authorization")), role)
        # A malformed Content-Length never gets here (the server refuses the framing); the stream is counted anyway.
        declared = headers.get("content-length", "").strip()
        if declared.isdecimal() and int(declared) > self.max_body_bytes:
            raise body_too_large(self.max_body_bytes)

    async def _pass_counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_tracked)
        except BodyTooLargeError:
            # Routes answer it through the app's handler; this is for code that reads the body outside a route.
            if started:
                raise
            await problem_json(body_too_large(self.max_body_bytes))(scope, receive, send)
