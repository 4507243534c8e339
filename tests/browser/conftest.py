"""The review service as a process (real Kafka and the MongoDB-compatible server) and Debian's chromium driving it.

Chromium is the system's (``CHROMIUM_EXECUTABLE``, default ``/usr/bin/chromium``; ``scripts/bootstrap`` installs the
Debian package): Playwright never downloads a browser here. Reviews are opened the real way, by producing
``IncidentClosed`` events to the service's topic and waiting until the API lists them.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from pymongo import MongoClient

from schemas import IncidentClosed, Severity
from tests.conftest import REPO, Servers
from tests.support.kafka import create_topics, produce
from tests.support.ports import free_port

CHROMIUM = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
ADMIN = "browser-admin-token-0123456789"
EDITOR = "browser-editor-token-0123456789"
OTHER_EDITOR = "browser-editor2-token-0123456789"
VIEWER = "browser-viewer-token-0123456789"
TOKENS = {
    ADMIN: {"name": "carol", "role": "admin"},
    EDITOR: {"name": "erin", "role": "editor"},
    OTHER_EDITOR: {"name": "eve", "role": "editor"},
    VIEWER: {"name": "vic", "role": "viewer"},
}


T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, in a thread of its own: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


@dataclass
class ReviewService:
    """The review service running as a process, and how to open reviews in it."""

    url: str
    servers: Servers
    closed_topic: str
    logs: Path

    def open_review(self, title: str, *, severity: Severity = Severity.CRITICAL, **fields: Any) -> str:
        """Produce an ``IncidentClosed`` and wait until the service has opened its review; the review's id."""
        incident_id = uuid.uuid4().hex[:10]
        closed = IncidentClosed.create(
            source="generic",
            source_incident_id=incident_id,
            resolved_at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
            title=title,
            severity=severity,
            source_severity=f"SEV-{severity.value}",
            service=fields.pop("service", f"checkout-{incident_id}"),
            team=fields.pop("team", "payments"),
            started_at=datetime(2026, 11, 27, 9, 12, tzinfo=UTC),
            url=f"https://tools.example/incidents/{incident_id}",
            **fields,
        )
        run_async(produce(self.servers.kafka_bootstrap, self.closed_topic, closed.model_dump_json().encode()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = httpx.get(
                f"{self.url}/reviews",
                params={"service": closed.service or ""},
                headers={"Authorization": f"Bearer {VIEWER}"},
                timeout=5,
            )
            if answer.status_code == 200 and answer.json():
                review_id: str = answer.json()[0]["id"]
                return review_id
            time.sleep(0.2)
        raise AssertionError(f"no review opened for {closed.incident_key}; log:\n{self.logs.read_text()[-3000:]}")

    def review(self, review_id: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/reviews/{review_id}", headers={"Authorization": f"Bearer {VIEWER}"}, timeout=5)
        answer.raise_for_status()
        review: dict[str, Any] = answer.json()
        return review


def _wait_ready(process: subprocess.Popen[bytes], url: str, logs: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"review exited early:\n{logs.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"review not ready after {timeout}s:\n{logs.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def review_service(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewService]:
    suffix = uuid.uuid4().hex[:8]
    closed, events, database = f"incidents.closed.{suffix}", f"reviews.events.{suffix}", f"browser_{suffix}"
    run_async(create_topics(servers.kafka_bootstrap, closed, f"{closed}.dlq", events))
    port = free_port()
    logs = tmp_path_factory.mktemp("browser") / "review.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "MONGODB_DATABASE": database,
        "REVIEW_CLOSED_TOPIC": closed,
        "REVIEW_EVENTS_TOPIC": events,
        "REVIEW_GROUP_ID": f"review-{suffix}",
        "REVIEW_HTTP_PORT": str(port),
        "REVIEW_API_TOKENS": json.dumps(TOKENS),
        "REVIEW_WEB_SESSION_SECRET": uuid.uuid4().hex,
    }
    with logs.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.review"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url, logs)
        yield ReviewService(url, servers, closed, logs)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client: MongoClient[dict[str, Any]]
        with MongoClient(servers.mongodb_uri) as client:
            client.drop_database(database)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, review_service: ReviewService) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=review_service.url, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, token: str) -> None:
    page.goto("/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Reviews", exact=True).wait_for()
