"""What every event has: a version, an id that makes redelivery harmless, and a UTC time."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Times on the wire are always offset-aware and normalised to UTC, so consumers never guess a zone.
utc_datetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Event(BaseModel):
    """Base of our own events: immutable and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    event_id: UUID
    occurred_at: utc_datetime
