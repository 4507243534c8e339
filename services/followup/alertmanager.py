"""A small client for Alertmanager's API v2: which alerts matching some labels are unresolved now.

``GET /api/v2/alerts`` with one ``filter`` per label matcher (``name="value"``, equality) answers the alerts
Alertmanager holds unresolved at the moment it is asked, silenced and inhibited ones included (a silenced alert still
fired); resolved ones are not listed. It says nothing about the past: the judge only uses it to prove that an alert
fired (``startsAt`` before the window's end). Requests go to the configured server only, bounded in time and size,
and nothing raises: each failure is classified (``Problem``) with a short reason.
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from services.followup.domain.answers import AlertsAnswer, Firing, FiringAlert, NoAnswer, Problem
from services.followup.judge_http import JudgeServer, short
from services.followup.settings import AlertmanagerSettings

ALERTS_PATH = "/api/v2/alerts"
# Every state an unresolved alert can be in: a silenced or inhibited alert fired all the same.
EVERY_STATE = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}


class AlertmanagerClient(JudgeServer):
    """Questions to one Alertmanager; ``close`` when done (the app's lifespan does)."""

    def __init__(self, settings: AlertmanagerSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("Alertmanager", settings, ALERTS_PATH, transport=transport)

    async def firing(self, matchers: Sequence[tuple[str, str]]) -> AlertsAnswer:
        """The unresolved alerts whose labels equal every matcher, or why Alertmanager did not say."""
        filters = [("filter", f'{name}="{_quoted(value)}"') for name, value in matchers]
        exchanged = await self.exchange("GET", params=httpx.QueryParams([*EVERY_STATE.items(), *filters]))
        if isinstance(exchanged, NoAnswer):
            return exchanged
        return _answer(*exchanged)


def _quoted(value: str) -> str:
    # Alertmanager's matcher syntax: a double-quoted value with \\, \" and \n escaped.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _answer(status: int, body: bytes) -> AlertsAnswer:
    if status >= 500 or 300 <= status < 400:
        return NoAnswer(Problem.UNREACHABLE, f"Alertmanager answered HTTP {status}")
    if status != httpx.codes.OK:
        # Alertmanager explains a refused filter in the body, as a JSON string.
        return NoAnswer(Problem.QUERY_ERROR, f"HTTP {status}: {short(body.decode(errors='replace'))}")
    try:
        document = json.loads(body)
        return Firing(tuple(_alert(alert) for alert in document))
    except (ValueError, TypeError, KeyError):
        return NoAnswer(Problem.QUERY_ERROR, "the answer is not a list of alerts")


def _alert(alert: Any) -> FiringAlert:
    starts_at = datetime.fromisoformat(alert["startsAt"])
    if starts_at.tzinfo is None:
        raise ValueError("startsAt without an offset")
    return FiringAlert(fingerprint=str(alert["fingerprint"]), starts_at=starts_at)
