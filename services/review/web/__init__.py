"""The web UI: server-rendered pages beside the API, for people completing, approving and following reviews.

Pages call the same service layer as the API (``ReviewService``): one rule, one place, no second path to MongoDB.
``install_web_ui`` mounts the pages, their static files, the security headers and the refusal pages on the app.
"""

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.review.auth import ApiTokens
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from services.review.web.action_items_page import ActionItemsPage
from services.review.web.csrf import CsrfTokens
from services.review.web.error_pages import ErrorPages
from services.review.web.pages import Pages
from services.review.web.postmortem_page import PostmortemPage
from services.review.web.review_page import ReviewPage
from services.review.web.reviews_page import ReviewsPage
from services.review.web.security_headers import SecurityHeaders
from services.review.web.sessions import SessionCookies
from services.review.web.signed_in import SignedIn
from services.review.web.signing_in import SignInPage
from services.review.web.trusted_proxy import TrustedProxy

log = logging.getLogger(__name__)


def session_secret(settings: ReviewSettings) -> bytes:
    """``REVIEW_WEB_SESSION_SECRET``, or a random one for this process (sessions then end when it stops)."""
    if settings.web_session_secret is not None and settings.web_session_secret.get_secret_value():
        return settings.web_session_secret.get_secret_value().encode()
    log.warning(
        "REVIEW_WEB_SESSION_SECRET is not set: web sessions use a random secret of this process, end when it "
        "restarts and are not recognised by other replicas"
    )
    return secrets.token_bytes(32)


def install_web_ui(
    app: FastAPI,
    service: ReviewService,
    tokens: ApiTokens,
    settings: ReviewSettings,
    clock: Callable[[], datetime],
) -> None:
    secret = session_secret(settings)
    csrf = CsrfTokens(secret)
    sessions = SessionCookies(secret, timedelta(minutes=settings.web_session_minutes), clock)
    pages = Pages(csrf, always_secure_cookies=(settings.public_base_url or "").startswith("https://"))
    proxy = (
        TrustedProxy(
            settings.web_proxy_addresses,
            user_header=settings.web_proxy_user_header,
            groups_header=settings.web_proxy_groups_header,
            group_roles=settings.web_proxy_group_roles,
        )
        if settings.web_proxy_auth
        else None
    )
    signed_in = SignedIn(sessions, csrf, proxy)
    for page in (
        SignInPage(pages, signed_in, sessions, tokens),
        ReviewsPage(pages, signed_in, service, clock),
        ActionItemsPage(pages, signed_in, service, clock),
        PostmortemPage(pages, signed_in, service),
        ReviewPage(pages, signed_in, service, clock),
    ):
        app.include_router(page.routes())
    app.mount("/static", StaticFiles(packages=[("services.review.web", "static")]), name="static")
    handlers: dict[type[Exception], Any] = ErrorPages(pages, signed_in).handlers()
    for error, handler in handlers.items():
        app.add_exception_handler(error, handler)
    app.add_middleware(SecurityHeaders)
