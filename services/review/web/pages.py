"""Rendering pages: the Jinja2 templates (autoescaped: a value can never become markup) and the cookies pages set.

Every page gets the signed-in person (``user``) and the CSRF token its forms carry (``csrf_token``); a browser
without a CSRF nonce cookie gets one with the page.
"""

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.review.auth import ApiClient
from services.review.web.csrf import CSRF_COOKIE, CsrfTokens
from services.review.web.formatting import day, duration, status_name, when, words


class Pages:
    def __init__(self, csrf: CsrfTokens, *, always_secure_cookies: bool) -> None:
        self.csrf = csrf
        self._always_secure = always_secure_cookies
        self._env = Environment(
            loader=PackageLoader("services.review.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(when=when, day=day, status_name=status_name, words=words)
        self._env.globals.update(duration=duration)

    def secure(self, request: Request) -> bool:
        """Cookies are ``Secure`` when the page is served over HTTPS (or the public address is https)."""
        return self._always_secure or request.url.scheme == "https"

    def set_cookie(self, response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=self.secure(request)
        )

    def clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=self.secure(request))

    def render(
        self, request: Request, template: str, *, user: ApiClient | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = nonce is None
        if nonce is None:
            nonce = self.csrf.new_nonce()
        html = self._env.get_template(template).render(
            request_path=request.url.path, user=user, csrf_token=self.csrf.token_for(nonce), **context
        )
        response = HTMLResponse(html, status_code=status)
        if fresh:
            self.set_cookie(response, request, CSRF_COOKIE, nonce, max_age=None)
        return response
