"""Lenient parsing shared by the vendor sources: vendors add fields and vary types, we must not crash."""

import json
from typing import Any

from pydantic import ValidationError

from schemas import validation_summary
from services.ingest.domain.outcome import Invalid


def json_object(body: bytes) -> dict[str, Any] | Invalid:
    """The body as a JSON object, or why it is not one."""
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        return Invalid("body is not UTF-8 text")
    except ValueError as exc:
        return Invalid(f"body is not JSON: {exc}")
    except RecursionError:
        return Invalid("body is not JSON: nested too deeply")
    if not isinstance(value, dict):
        return Invalid(f"body is a JSON {type(value).__name__}, expected an object")
    return value


def describe(exc: ValidationError, limit: int = 5) -> str:
    """A short, field-naming summary of a validation error, safe to put in a DLQ header."""
    return validation_summary(exc, limit)
