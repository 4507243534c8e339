"""The web UI's refusals as pages: sign in first (a redirect), a missing or wrong form token, a role too low."""

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.review.web.csrf import CsrfRefusedError
from services.review.web.pages import Pages
from services.review.web.signed_in import SignedIn, SignInRequiredError, WriteForbiddenError
from services.review.web.trusted_proxy import NoRoleError


class ErrorPages:
    def __init__(self, pages: Pages, signed_in: SignedIn) -> None:
        self.pages, self.signed_in = pages, signed_in

    async def sign_in_first(self, _: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequiredError)
        return RedirectResponse(f"/sign-in?next={quote(exc.back_to, safe='')}", status_code=303)

    async def csrf_refused(self, request: Request, exc: Exception) -> Response:
        return self.refused(
            request,
            "This form was refused",
            f"{exc}. Nothing was saved. Go back, reload the page and submit it again.",
            status=403,
        )

    async def forbidden(self, request: Request, exc: Exception) -> Response:
        return self.refused(request, "Not allowed", f"{exc}. Nothing was saved.", status=403)

    async def no_role(self, request: Request, exc: Exception) -> Response:
        return self.pages.render(request, "refused.html", user=None, status=403, title="No access", detail=f"{exc}.")

    def refused(self, request: Request, title: str, detail: str, *, status: int) -> Response:
        return self.pages.render(
            request,
            "refused.html",
            user=self.signed_in.optional(request),
            status=status,
            title=title,
            detail=detail,
        )

    def handlers(self) -> dict[type[Exception], object]:
        return {
            SignInRequiredError: self.sign_in_first,
            CsrfRefusedError: self.csrf_refused,
            WriteForbiddenError: self.forbidden,
            NoRoleError: self.no_role,
        }
