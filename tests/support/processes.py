"""A real server the tests run as a process (Prometheus, Alertmanager): started until it says it is ready, stopped."""

import subprocess
import time
from pathlib import Path

import httpx


def start_until_ready(argv: list[str], log_path: Path, ready_url: str, timeout: float) -> subprocess.Popen[bytes]:
    """Start ``argv`` (output appended to ``log_path``) and wait until ``ready_url`` answers 200.

    A process that exits first, or is not ready in time (it is then stopped), raises, naming its log.
    """
    name = Path(argv[0]).name
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(ready_url, timeout=1.0).status_code == httpx.codes.OK:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    terminate(process)
    raise RuntimeError(f"{name} was not ready within {timeout}s; see {log_path}")


def terminate(process: subprocess.Popen[bytes], grace_seconds: float = 15.0) -> None:
    """SIGTERM, and SIGKILL if it outlives ``grace_seconds``."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
