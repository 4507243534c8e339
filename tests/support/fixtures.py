"""Fixture payloads live in ``tests/fixtures/<source>/<name>``, named for what they show."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(source: str, name: str) -> bytes:
    return (FIXTURES / source / name).read_bytes()
