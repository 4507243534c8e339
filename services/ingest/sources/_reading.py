"""Reading vendor payloads: the body as a JSON object, then its fields as text and objects, leniently or strictly.

Vendors vary types and leave fields out. The lenient readers (``text``, ``as_object``...) return ``None`` or an empty
value for anything unusable, for fields that are decorative; the ``required_*`` readers raise ``PayloadError`` naming
the field, for what the incident needs. A source raises ``PayloadError`` deep in its mapping and ``map_payload``
returns it as ``Invalid`` at the boundary, so every input ends as an outcome, never as an exception.

Lone UTF-16 surrogates (legal in JSON escapes such as ``"\\ud800"``, not encodable as UTF-8) are replaced with ``?``
by every text reader, so vendor text can always be published.
"""

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Invalid, Outcome, RawIncident

# Integers this large are not ids or times but noise; refusing them also keeps ``str()`` cheap.
MAX_INTEGER = 10**21

PayloadMapping = Callable[[dict[str, Any], NormalisationConfig], Outcome]


class PayloadError(Exception):
    """Why a payload cannot become an incident, naming the field; the source returns it as ``Invalid``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


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


def map_payload(raw: RawIncident, config: NormalisationConfig, mapping: PayloadMapping) -> Outcome:
    """The body decoded as a JSON object and mapped to an outcome; a ``PayloadError`` on the way is ``Invalid``."""
    payload = json_object(raw.body)
    if isinstance(payload, Invalid):
        return payload
    try:
        return mapping(payload, config)
    except PayloadError as exc:
        return Invalid(str(exc))


# --- text -----------------------------------------------------------------------------------------------------------


def clean(value: str) -> str:
    """The text with lone UTF-16 surrogates replaced (by ``?``), so it can be encoded as UTF-8."""
    if value.isascii():  # CPython knows this without reading the text; most vendor text is ASCII
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def quoted(value: str, limit: int = 80) -> str:
    """A vendor value for a reason: quoted and short, since reasons travel in DLQ headers and logs."""
    return repr(truncate(value, limit))


def text(value: Any) -> str | None:
    """A non-empty, stripped string from a string or a finite number; ``None`` for anything else."""
    if isinstance(value, str):
        return clean(value).strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < MAX_INTEGER else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return None


def first_text(*values: Any) -> str | None:
    """The first of ``values`` that is text (see ``text``)."""
    return next((found for found in map(text, values) if found is not None), None)


def texts(values: Iterable[Any]) -> list[str]:
    """The non-empty strings among ``values``, in order."""
    return [found for found in map(text, values) if found is not None]


def required_text(value: Any, field: str) -> str:
    found = text(value)
    if found is None:
        raise PayloadError(field, "required, a non-empty string")
    return found


# --- structure ------------------------------------------------------------------------------------------------------


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one when the vendor sent something else (for optional, decorative parts)."""
    return value if isinstance(value, dict) else {}


def required_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field, "required, a JSON object")
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects in a list (anything else in it, or a non-list, is skipped)."""
    return [item for item in as_list(value) if isinstance(item, dict)]
