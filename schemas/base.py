"""What every event has: a version, an id that makes redelivery harmless, and a UTC time."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, ValidationError


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+00:01 has no UTC form: refuse it, naming the field
        raise ValueError("time is out of range once converted to UTC") from exc


def _encodable(value: str) -> str:
    # JSON text may escape lone UTF-16 surrogates that no UTF-8 wire can carry; refuse them here, naming the field,
    # rather than fail later when the event is serialised and published.
    if value.isascii():  # known without reading the text: no surrogate
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text contains a lone surrogate and cannot be encoded as UTF-8") from exc
    return value


# Text that is guaranteed to serialise: every string field of our events uses it.
Text = Annotated[str, AfterValidator(_encodable)]

# Times on the wire are always offset-aware and normalised to UTC, so consumers never guess a zone.
utc_datetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Event(BaseModel):
    """Base of our own events: immutable and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    event_id: UUID
    occurred_at: utc_datetime


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    """A short, field-naming summary of why a message breaks its contract, without echoing its content.

    Safe for DLQ headers and logs: input values are left out, since they may carry payload data.
    """
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
