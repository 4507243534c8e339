"""Cross-site request forgery: every form carries a token, and a write without the right one is refused.

A signed double-submit token: the browser holds a random nonce in an ``HttpOnly``, ``SameSite=Strict`` cookie; forms
carry ``HMAC(secret, nonce)``. A page on another site can neither read the cookie nor compute the token, and
``SameSite=Strict`` keeps the cookie off its requests anyway. The sign-in form is protected the same way (no login
CSRF), and signing in draws a new nonce.
"""

import hashlib
import hmac
import secrets

CSRF_COOKIE = "lessons_csrf"
CSRF_FIELD = "csrf_token"


class CsrfRefusedError(Exception):
    """A write came without the form's token, or with one that does not belong to this browser."""


class CsrfTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"lessons-csrf|" + secret).digest()

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    def token_for(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def check(self, nonce: str | None, token: object) -> None:
        """``CsrfRefusedError`` unless ``token`` (the form's) was made for ``nonce`` (the browser's cookie)."""
        if not nonce or not isinstance(token, str) or not token:
            raise CsrfRefusedError("the form carried no security token")
        if not hmac.compare_digest(token, self.token_for(nonce)):
            raise CsrfRefusedError("the form's security token does not belong to this browser")
