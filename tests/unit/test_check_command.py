"""``python -m services.ingest check``: what operators run to test a tool's payload before wiring it up."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.support.fixtures import FIXTURES


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.ingest", "check", *args], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_accepted_prints_one_incident_per_line_and_exits_0() -> None:
    result = check("--source", "generic", str(FIXTURES / "generic" / "resolved.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["incident_key"] == "generic:INC-2041"


@pytest.mark.parametrize(
    ("name", "code", "prefix"),
    [
        ("triggered.json", 1, "ignored: status 'triggered'"),
        ("missing_resolved_at.json", 2, "invalid: resolved_at"),
    ],
)
def test_ignored_and_invalid_say_why(name: str, code: int, prefix: str) -> None:
    result = check("--source", "generic", str(FIXTURES / "generic" / name))
    assert result.returncode == code
    assert result.stdout.startswith(prefix)


def test_an_unknown_source_is_a_usage_error() -> None:
    result = check("--source", "nagios", str(FIXTURES / "generic" / "resolved.json"))
    assert result.returncode == 2
    assert "invalid choice: 'nagios'" in result.stderr
