"""The runner every service uses, as a process: slow clients are cut off, and SIGTERM ends it with status 0."""

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.tiny_service", str(port)], cwd=REPO, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def read_all(connection: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    connection.settimeout(timeout)
    started, answer = time.monotonic(), b""
    while chunk := connection.recv(4096):
        answer += chunk
    return answer, time.monotonic() - started


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\n", id="headers never finished"),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part", id="body never finished"
        ),
    ],
)
def test_a_request_that_does_not_arrive_in_time_is_answered_408_and_closed(
    served: tuple[subprocess.Popen[bytes], int], partial: bytes
) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(partial)
        answer, waited = read_all(connection, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.5 < waited < 5


def test_a_whole_request_is_served_and_sigterm_ends_the_process_with_status_0(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    assert httpx.post(f"http://127.0.0.1:{port}/echo", content=b"12345").json() == {"received": 5}
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


async def test_the_access_log_names_no_query_string(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    async with httpx.AsyncClient() as client:
        await client.post(f"http://127.0.0.1:{port}/echo?token=s3cret-value", content=b"x")
    process.send_signal(signal.SIGTERM)
    _, errors = await asyncio.to_thread(process.communicate, timeout=15)
    assert b"POST /echo " in errors or b"/echo HTTP" in errors
    assert b"s3cret-value" not in errors
