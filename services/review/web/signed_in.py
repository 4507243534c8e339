"""Who is using the page, and what a write must bring.

A person is who the trusted auth proxy vouches for (proxy mode, ``trusted_proxy``) or who signed in with an API token
(the session cookie). A page needs a signed-in person (any role); a write also needs the form's CSRF token and the
role the API asks for the same change (``Role.can``, and ``access.role_for_move`` for workflow moves): one rule for
both doors.
"""

from starlette.datastructures import FormData
from starlette.requests import Request

from services.review.auth import ApiClient, Role
from services.review.web.csrf import CSRF_COOKIE, CSRF_FIELD, CsrfTokens
from services.review.web.sessions import SESSION_COOKIE, SessionCookies
from services.review.web.trusted_proxy import TrustedProxy


class SignInRequiredError(Exception):
    """No valid session: the page sends the browser to sign in, and back here afterwards."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


class WriteForbiddenError(Exception):
    """The signed-in person's role may not make this change."""


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: a sign-in link cannot send anyone elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class SignedIn:
    def __init__(self, sessions: SessionCookies, csrf: CsrfTokens, proxy: TrustedProxy | None = None) -> None:
        self.sessions = sessions
        self.csrf = csrf
        self.proxy = proxy

    def optional(self, request: Request) -> ApiClient | None:
        """Who the trusted proxy vouches for (in proxy mode), else who signed in with a token, else None."""
        if self.proxy is not None:
            vouched = self.proxy.identify(request)
            if vouched is not None:
                return vouched
        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        return session.client if session is not None else None

    def reader(self, request: Request) -> ApiClient:
        client = self.optional(request)
        if client is None:
            query = f"?{request.url.query}" if request.url.query else ""
            raise SignInRequiredError(local_path(request.url.path + query))
        return client

    async def form(self, request: Request) -> FormData:
        """The posted form, once its CSRF token is checked against this browser's nonce."""
        form = await request.form()
        self.csrf.check(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD))
        return form

    async def writer(self, request: Request, role: Role = Role.EDITOR) -> tuple[ApiClient, FormData]:
        """The signed-in person and their form, if the token is right and their role may write."""
        client = self.reader(request)
        form = await self.form(request)
        must_have(client, role)
        return client, form


def must_have(client: ApiClient, role: Role) -> None:
    if not client.role.can(role):
        raise WriteForbiddenError(f"your role ({client.role}) may not do this: {role} needed")
