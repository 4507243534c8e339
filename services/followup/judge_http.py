"""The HTTP plumbing follow-up's two judges share (Prometheus, Alertmanager): one client per configured server, with
its auth, timeout and no redirects, answers read only up to a size limit, and every failure of an exchange classified
(``NoAnswer``) instead of raised.
"""

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr

from services.followup.domain.answers import NoAnswer, Problem
from services.followup.settings import JudgeServerSettings

# A server's own error text can be long (Prometheus quotes the expression): a reason keeps its start.
MAX_DETAIL_CHARS = 500


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


def short(text: str) -> str:
    """``text`` on one line, cut to ``MAX_DETAIL_CHARS``: a reason fit for a verdict's evidence and a log line."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


class JudgeServer:
    """One judge server (``name``, e.g. Prometheus) at ``path`` of its URL; ``close`` when done (the lifespan does).

    ``exchange`` is the whole request, bounded in time (not just each read: a server that drips bytes cannot hold a
    sweep) and in size, with each failure as a ``NoAnswer`` naming why.
    """

    def __init__(
        self,
        name: str,
        settings: JudgeServerSettings,
        path: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._url = None if settings.url is None else settings.url.rstrip("/") + path
        self._http = judge_client(
            username=settings.username,
            password=settings.password,
            bearer_token=settings.bearer_token,
            timeout_seconds=settings.timeout_seconds,
            transport=transport,
        )

    @property
    def configured(self) -> bool:
        return self._url is not None

    async def close(self) -> None:
        await self._http.aclose()

    async def exchange(self, method: str, **request: Any) -> tuple[int, bytes] | NoAnswer:
        """The status and body of one request to the configured URL, or why there are none."""
        if self._url is None:
            return NoAnswer(Problem.UNREACHABLE, f"no {self._name} is configured ({self._settings.setting('URL')})")
        limit, setting = self._settings.max_response_bytes, self._settings.setting("MAX_RESPONSE_BYTES")
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                async with self._http.stream(method, self._url, **request) as response:
                    return response.status_code, await bounded_body(response, limit, setting)
        except TimeoutError:
            return NoAnswer(Problem.UNREACHABLE, f"no answer within {self._settings.timeout_seconds:g}s")
        except AnswerTooLargeError as exc:
            return NoAnswer(Problem.QUERY_ERROR, str(exc))
        except httpx.HTTPError as exc:
            return NoAnswer(Problem.UNREACHABLE, f"{type(exc).__name__}: {short(str(exc)) or 'connection failed'}")
