"""The severity look-up: each table in turn, case- and space-insensitive, the common vocabulary last."""

import pytest

from schemas import Severity
from services.ingest.domain.severity import COMMON_SEVERITIES, normalise_severity


@pytest.mark.parametrize(
    ("given", "expected"),
    [("critical", Severity.CRITICAL), (" Sev 2 ", Severity.HIGH), ("WARN", Severity.MEDIUM), ("P 4", Severity.LOW)],
)
def test_the_common_vocabulary_ignores_case_and_spaces(given: str, expected: Severity) -> None:
    assert normalise_severity(given) is expected


def test_every_common_spelling_is_found_as_listed() -> None:
    assert all(normalise_severity(known) is severity for known, severity in COMMON_SEVERITIES.items())


def test_earlier_tables_win_and_their_names_are_compared_the_same_way() -> None:
    overrides = {"Critical ": Severity.LOW}
    source = {"critical": Severity.MEDIUM, "page": Severity.HIGH}

    assert normalise_severity("CRITICAL", overrides, source) is Severity.LOW
    assert normalise_severity("critical", source) is Severity.MEDIUM
    assert normalise_severity("Page", overrides, source) is Severity.HIGH


def test_unknown_and_missing_values_are_unknown() -> None:
    assert normalise_severity("purple") is Severity.UNKNOWN
    assert normalise_severity(None) is Severity.UNKNOWN
    assert normalise_severity("") is Severity.UNKNOWN
