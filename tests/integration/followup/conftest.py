"""A real Prometheus with known history, shared by the follow-up tests that only read from it."""

from collections.abc import Iterator

import pytest

from tests.integration.followup.prometheus_history import History, recent_history
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="session")
def history() -> History:
    return recent_history()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, history: History) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus") / "data")
    server.backfill(history.series())
    server.start()
    try:
        yield server
    finally:
        server.stop()
