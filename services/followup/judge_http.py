"""The HTTP plumbing follow-up's two judges share (Prometheus, Alertmanager): one client per configured server, with
its auth, timeout and no redirects, and answers read only up to a size limit.
"""

import httpx
from pydantic import SecretStr


class AnswerTooLargeError(Exception):
    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(f"the answer is larger than {limit} bytes ({setting})")


def judge_client(
    *,
    username: str | None,
    password: SecretStr | None,
    bearer_token: SecretStr | None,
    timeout_seconds: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    auth: httpx.Auth | None = None
    headers = {"Accept": "application/json"}
    if username is not None and password is not None:
        auth = httpx.BasicAuth(username, password.get_secret_value())
    if bearer_token is not None:
        headers["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
    # Redirects are not followed: a query goes to the configured server and nowhere else.
    return httpx.AsyncClient(
        auth=auth,
        headers=headers,
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        transport=transport,
    )


async def bounded_body(response: httpx.Response, limit: int, setting: str) -> bytes:
    """The body of a streamed ``response``, refused (``AnswerTooLargeError``) as soon as it exceeds ``limit``."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise AnswerTooLargeError(limit, setting)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLargeError(limit, setting)
    return bytes(body)
