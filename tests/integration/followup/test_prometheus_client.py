"""The Prometheus client against a real Prometheus: values at a chosen time, and every failure classified."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.followup.domain.answers import NoAnswer, Problem, Values
from services.followup.prometheus import PrometheusClient
from services.followup.settings import PrometheusSettings
from tests.integration.followup.prometheus_history import History
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(prometheus: PrometheusServer) -> AsyncIterator[PrometheusClient]:
    client = PrometheusClient(PrometheusSettings(url=prometheus.url, timeout_seconds=5))
    try:
        yield client
    finally:
        await client.close()


async def test_an_instant_query_answers_for_the_time_asked(client: PrometheusClient, history: History) -> None:
    latency = 'checkout_latency_seconds{job="checkout"}'

    assert await client.instant(latency, history.at(30)) == Values((0.9,))
    assert await client.instant(latency, history.at(120)) == Values((0.3,))
    assert await client.instant("scalar(vector(2.5))", history.at(120)) == Values((2.5,))


async def test_a_query_over_the_window_sees_the_alert_that_fired(client: PrometheusClient, history: History) -> None:
    alert = 'max_over_time(ALERTS{alertname="CheckoutSlow",alertstate="firing",service="checkout"}[30m])'

    assert await client.instant(alert, history.at(90)) == Values(())
    assert await client.instant(alert, history.at(120)) == Values((1.0,))


async def test_failures_are_classified(client: PrometheusClient, history: History) -> None:
    syntax = await client.instant("max_over_time(", history.at(120))
    range_vector = await client.instant("up[5m]", history.at(120))

    assert isinstance(syntax, NoAnswer)
    assert syntax.problem is Problem.QUERY_ERROR
    assert syntax.detail.startswith("bad_data: ")
    assert range_vector == NoAnswer(
        Problem.QUERY_ERROR, "the expression is a range vector: wrap it in e.g. max_over_time()"
    )
    assert await client.instant('nothing_here{job="x"}', history.at(120)) == Values(())


async def test_an_answer_over_the_size_bound_is_refused(prometheus: PrometheusServer, history: History) -> None:
    client = PrometheusClient(PrometheusSettings(url=prometheus.url, max_response_bytes=1024))
    try:
        wide = await client.instant("wide", history.at(120))
        narrow = await client.instant('wide{shard="7"}', history.at(120))
    finally:
        await client.close()

    assert wide == NoAnswer(
        Problem.QUERY_ERROR, "the answer is larger than 1024 bytes (FOLLOWUP_PROMETHEUS_MAX_RESPONSE_BYTES)"
    )
    assert narrow == Values((7.0,))


async def test_a_stopped_prometheus_is_unreachable_until_it_is_back(tmp_path: Path, history: History) -> None:
    server = PrometheusServer(tmp_path / "data")
    server.backfill(history.series())
    server.start()
    client = PrometheusClient(PrometheusSettings(url=server.url, timeout_seconds=2))
    try:
        server.stop()
        stopped = await client.instant('checkout_latency_seconds{job="checkout"}', history.at(120))
        server.start()
        back = await client.instant('checkout_latency_seconds{job="checkout"}', history.at(120))
    finally:
        server.stop()
        await client.close()

    assert isinstance(stopped, NoAnswer)
    assert stopped.problem is Problem.UNREACHABLE
    assert stopped.detail.startswith("ConnectError")
    assert back == Values((0.3,))


async def test_nothing_listening_and_nothing_configured_are_unreachable(history: History) -> None:
    nowhere = PrometheusClient(PrometheusSettings(url=f"http://127.0.0.1:{free_port()}"))
    unset = PrometheusClient(PrometheusSettings())
    try:
        refused = await nowhere.instant("up", history.at(120))
        unconfigured = await unset.instant("up", history.at(120))
    finally:
        await nowhere.close()
        await unset.close()

    assert isinstance(refused, NoAnswer)
    assert refused.problem is Problem.UNREACHABLE
    assert unconfigured == NoAnswer(Problem.UNREACHABLE, "no Prometheus is configured (FOLLOWUP_PROMETHEUS_URL)")
