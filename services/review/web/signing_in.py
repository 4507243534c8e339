"""Sign in with an API token (the same tokens and roles as the API), sign out.

The token is checked once, at sign-in; the session cookie then names the token's client and role until it expires
(``REVIEW_WEB_SESSION_MINUTES``). The token itself is never stored in the cookie.
"""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.review.auth import ApiTokens
from services.review.web.csrf import CSRF_COOKIE
from services.review.web.pages import Pages
from services.review.web.sessions import SESSION_COOKIE, SessionCookies
from services.review.web.signed_in import SignedIn, local_path


class SignInPage:
    def __init__(self, pages: Pages, signed_in: SignedIn, sessions: SessionCookies, tokens: ApiTokens) -> None:
        self.pages, self.signed_in, self.sessions, self.tokens = pages, signed_in, sessions, tokens

    def routes(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/sign-in", self.show, methods=["GET"])
        router.add_api_route("/sign-in", self.sign_in, methods=["POST"])
        router.add_api_route("/sign-out", self.sign_out, methods=["POST"])
        return router

    async def show(self, request: Request, next: str = "/") -> Response:
        return self.pages.render(
            request, "sign_in.html", user=self.signed_in.optional(request), next=local_path(next), error=None
        )

    async def sign_in(self, request: Request) -> Response:
        form = await self.signed_in.form(request)
        token = form.get("token")
        back_to = local_path(str(form.get("next") or "/"))
        client = self.tokens.identify(token.strip()) if isinstance(token, str) and token.strip() else None
        if client is None:
            return self.pages.render(
                request,
                "sign_in.html",
                user=None,
                status=401,
                next=back_to,
                error="That token is not known here. Check it and try again.",
            )
        response = RedirectResponse(back_to, status_code=303)
        lifetime = int(self.sessions.lifetime.total_seconds())
        self.pages.set_cookie(response, request, SESSION_COOKIE, self.sessions.issue(client), max_age=lifetime)
        # A new CSRF nonce with the new session: a token seen before signing in is worth nothing after.
        self.pages.set_cookie(response, request, CSRF_COOKIE, self.pages.csrf.new_nonce(), max_age=None)
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.signed_in.form(request)
        response = RedirectResponse("/sign-in", status_code=303)
        self.pages.clear_cookie(response, request, SESSION_COOKIE)
        self.pages.clear_cookie(response, request, CSRF_COOKIE)
        return response
