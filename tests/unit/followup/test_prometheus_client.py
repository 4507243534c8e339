"""What the Prometheus client sends, and where: only the configured server, with the configured credentials.

An in-memory transport stands in for the network here; the answers themselves are tested against a real Prometheus
(tests/integration/followup/test_prometheus_client.py).
"""

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from schemas import ActionItemPriority
from services.followup.domain.answers import NoAnswer, Problem, Values
from services.followup.domain.verification import Timing, VerificationPolicy
from services.followup.prometheus import PrometheusClient
from services.followup.settings import FollowupSettings, PrometheusSettings

AT = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SUCCESS = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1.5"]}]}}


class Recorder:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response


async def ask(
    settings: PrometheusSettings, response: httpx.Response, expression: str = "up"
) -> tuple[object, Recorder]:
    recorder = Recorder(response)
    client = PrometheusClient(settings, transport=httpx.MockTransport(recorder))
    try:
        return await client.instant(expression, AT), recorder
    finally:
        await client.close()


async def test_the_query_goes_in_the_body_to_the_configured_path_with_basic_auth() -> None:
    settings = PrometheusSettings(url="https://prom.example/prefix/", username="judge", password=SecretStr("s3cret"))
    expression = 'max_over_time(x{a="http://elsewhere.example/"}[7d])'

    answer, recorder = await ask(settings, httpx.Response(200, json=SUCCESS), expression)

    assert answer == Values((1.5,))
    (request,) = recorder.requests
    assert str(request.url) == "https://prom.example/prefix/api/v1/query"
    assert request.method == "POST"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"query": expression, "time": f"{AT.timestamp():.3f}", "timeout": "10s"}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"judge:s3cret").decode()


async def test_a_bearer_token_is_sent_and_never_shown() -> None:
    settings = PrometheusSettings(url="http://prom:9090", bearer_token=SecretStr("t0ken"))

    _, recorder = await ask(settings, httpx.Response(200, json=SUCCESS))

    assert recorder.requests[0].headers["authorization"] == "Bearer t0ken"
    assert "t0ken" not in repr(settings)


async def test_a_redirect_is_not_followed() -> None:
    redirect = httpx.Response(302, headers={"location": "http://elsewhere.example/api/v1/query"})

    answer, recorder = await ask(PrometheusSettings(url="http://prom:9090"), redirect)

    assert answer == NoAnswer(Problem.UNREACHABLE, "Prometheus answered HTTP 302")
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (503, {"status": "error", "errorType": "unavailable", "error": "starting"}, Problem.UNREACHABLE),
        (422, {"status": "error", "errorType": "execution", "error": "many-to-many"}, Problem.QUERY_ERROR),
        (422, {"status": "error", "errorType": "timeout", "error": "query timed out"}, Problem.UNREACHABLE),
        (200, {"status": "success", "data": {"resultType": "string", "result": [0, "x"]}}, Problem.QUERY_ERROR),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": [0]}]}}, Problem.QUERY_ERROR),
    ],
)
async def test_failed_answers_are_classified(status: int, body: dict[str, object], problem: Problem) -> None:
    answer, _ = await ask(PrometheusSettings(url="http://prom:9090"), httpx.Response(status, json=body))

    assert isinstance(answer, NoAnswer)
    assert answer.problem is problem


async def test_a_declared_oversized_answer_is_not_read() -> None:
    big = httpx.Response(200, content=json.dumps(SUCCESS).encode() + b" " * 5_000)

    answer, _ = await ask(PrometheusSettings(url="http://prom:9090", max_response_bytes=1024), big)

    assert answer == NoAnswer(
        Problem.QUERY_ERROR, "the answer is larger than 1024 bytes (FOLLOWUP_PROMETHEUS_MAX_RESPONSE_BYTES)"
    )


@pytest.mark.parametrize(
    "values",
    [
        {"url": "ftp://prom:9090"},
        {"url": "http://prom:9090/?target=elsewhere"},
        {"url": "http://prom:9090", "username": "judge"},
        {"url": "http://prom:9090", "username": "a", "password": "b", "bearer_token": "c"},
    ],
)
def test_settings_refuse_what_could_send_queries_elsewhere_or_half_authenticated(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PrometheusSettings.model_validate(values)


def test_verification_and_prometheus_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOLLOWUP_VERIFICATION_TIMINGS", '{"critical": {"stabilisation": "PT6H", "window": "P3D"}}')
    monkeypatch.setenv("FOLLOWUP_VERIFICATION_RETRY_MAX", "PT1H")
    monkeypatch.setenv("FOLLOWUP_PROMETHEUS_URL", "https://prom.example")
    monkeypatch.setenv("FOLLOWUP_PROMETHEUS_BEARER_TOKEN", "t0ken")

    policy = FollowupSettings().verification_policy()
    prometheus = PrometheusSettings()

    assert policy.timings[ActionItemPriority.CRITICAL] == Timing(timedelta(hours=6), timedelta(days=3))
    assert policy.timings[ActionItemPriority.LOW] == VerificationPolicy().timings[ActionItemPriority.LOW]
    assert policy.retry_max == timedelta(hours=1)
    assert prometheus.url == "https://prom.example"
    assert prometheus.bearer_token is not None
    assert prometheus.bearer_token.get_secret_value() == "t0ken"


def test_an_invalid_verification_setting_stops_the_service_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOLLOWUP_VERIFICATION_RETRY_FIRST", "P1D")
    with pytest.raises(ValidationError, match="no longer than the longest"):
        FollowupSettings()
