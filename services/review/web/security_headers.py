"""Headers every web page carries: a strict Content-Security-Policy, no sniffing, no framing, no caching.

The policy allows our own scripts, styles and images only: no inline script or style, no other origin, forms posting
only here, and no page of ours inside another site's frame (``frame-ancestors 'none'``, and ``X-Frame-Options`` for
older browsers). The API (``/reviews``) answers JSON and keeps its own headers; ``/docs`` loads Swagger UI from its
CDN, so it is left out.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# Not pages of the web UI: the API's JSON and the OpenAPI tools.
NOT_PAGES = ("/reviews", "/docs", "/redoc", "/openapi.json")


def is_page(path: str) -> bool:
    return not any(path == prefix or path.startswith(prefix + "/") for prefix in NOT_PAGES)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in PAGE_HEADERS.items():
                    headers[name] = value
                if not scope["path"].startswith("/static/"):
                    # Pages show reviews that name people: never kept by a shared cache or the back button.
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
