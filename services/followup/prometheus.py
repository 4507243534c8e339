"""A small client for Prometheus' HTTP API: instant queries at a chosen time, bounded in time and size.

Every query goes to the configured server's ``/api/v1/query`` and nowhere else: the URL is fixed when the client is
made, the expression and time travel in the POST body (form-encoded, as Prometheus accepts), and redirects are not
followed. Nothing raises for a failed query: each failure is classified (``Problem``) with a short reason, so the
judge can answer ``inconclusive`` and say why.
"""

import json
from datetime import datetime
from typing import Any

import httpx

from services.followup.domain.answers import Answer, NoAnswer, Problem, Values
from services.followup.judge_http import JudgeServer, short
from services.followup.settings import PrometheusSettings

QUERY_PATH = "/api/v1/query"


class PrometheusClient(JudgeServer):
    """Instant queries against one Prometheus; ``close`` when done (the app's lifespan does)."""

    def __init__(self, settings: PrometheusSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("Prometheus", settings, QUERY_PATH, transport=transport)

    async def instant(self, expression: str, at: datetime) -> Answer:
        """The value(s) of ``expression`` evaluated at ``at`` (Prometheus' ``time=``), or why there are none."""
        form = {
            "query": expression,
            "time": f"{at.timestamp():.3f}",
            # Prometheus stops evaluating after this long too, rather than working on for nobody.
            "timeout": f"{self._settings.timeout_seconds:g}s",
        }
        exchanged = await self.exchange("POST", data=form)
        if isinstance(exchanged, NoAnswer):
            return exchanged
        return _answer(*exchanged)


def _answer(status: int, body: bytes) -> Answer:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        if status >= 500 or 300 <= status < 400:
            return NoAnswer(Problem.UNREACHABLE, f"Prometheus answered HTTP {status}")
        return NoAnswer(Problem.QUERY_ERROR, f"HTTP {status} without a Prometheus API answer")
    if document.get("status") != "success":
        error_type = str(document.get("errorType", "unknown"))
        detail = f"{error_type}: {short(str(document.get('error', '')))}"
        # Prometheus answers 503 (unavailable), timeout or canceled when it could not evaluate now: retrying helps.
        if status >= 500 or error_type in {"timeout", "canceled", "unavailable"}:
            return NoAnswer(Problem.UNREACHABLE, detail)
        return NoAnswer(Problem.QUERY_ERROR, detail)
    return _values(document.get("data"))


def _values(data: Any) -> Answer:
    if not isinstance(data, dict):
        return NoAnswer(Problem.QUERY_ERROR, "the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "scalar":
            return Values((_number(result),))
        if kind == "vector" and isinstance(result, list):
            return Values(tuple(_number(series["value"]) for series in result))
    except (KeyError, TypeError, ValueError, IndexError):
        return NoAnswer(Problem.QUERY_ERROR, "the answer's values are not numbers")
    if kind == "matrix":
        return NoAnswer(Problem.QUERY_ERROR, "the expression is a range vector: wrap it in e.g. max_over_time()")
    return NoAnswer(Problem.QUERY_ERROR, f"unexpected result type {kind!r}")


def _number(sample: Any) -> float:
    # A sample is [unix time, "value"]; Prometheus writes NaN and infinities as strings, which float() reads.
    return float(sample[1])
