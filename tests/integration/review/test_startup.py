"""A bad configuration stops ``python -m services.review`` before it connects anywhere, naming what is wrong."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.support.fixtures import FIXTURES

pytestmark = pytest.mark.integration

SECRET = "do-not-print-this-token-0123456789"


def start_review(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.review"],
        cwd=REPO,
        # Nothing listens on these: the service must fail on its configuration, not on a connection.
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URI": "mongodb://127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_policy_file_with_a_typo_stops_startup_with_the_field_named() -> None:
    typo = FIXTURES / "review" / "policy_typo.yaml"
    result = start_review(REVIEW_POLICY_FILE=str(typo))
    assert result.returncode == 2
    assert f"review: cannot start: {typo}: invalid review policy: rules.0.when.severity.1: Input should be" in (
        result.stderr
    )


def test_a_bad_token_setting_stops_startup_without_showing_the_token() -> None:
    result = start_review(REVIEW_API_TOKENS=f'{{"{SECRET}": {{"name": "ci", "role": "owner"}}}}')
    assert result.returncode == 2
    assert "REVIEW_API_TOKENS entry #1: role: Input should be 'viewer', 'editor' or 'admin'" in result.stderr
    assert SECRET not in result.stderr + result.stdout
