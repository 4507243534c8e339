"""docs/review.md shows the policy files as they are: the default verbatim, the example as the fixture."""

import re
from pathlib import Path

from services.review.domain.policy import ReviewPolicy, parse_policy
from services.review.policy_file import load_policy
from tests.support.fixtures import FIXTURES

DOC = Path(__file__).resolve().parents[3] / "docs" / "review.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_documented_default_is_the_default() -> None:
    default, _ = yaml_blocks()
    assert parse_policy(default) == ReviewPolicy()


def test_the_documented_example_is_the_tested_fixture() -> None:
    _, example = yaml_blocks()
    assert example == (FIXTURES / "review" / "policy_chosen_services.yaml").read_text(encoding="utf-8")
    assert parse_policy(example) == load_policy(FIXTURES / "review" / "policy_chosen_services.yaml")
