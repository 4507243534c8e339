"""What a vendor payload becomes: accepted incidents, ignored (with why) or invalid (with why)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import IncidentClosed


@dataclass(frozen=True)
class RawIncident:
    """A record from ``incidents.raw``: the vendor's bytes, unchanged, and the transport headers (lower-case keys)."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    incidents: tuple[IncidentClosed, ...]
    # Each incident's JSON as published, in the same order, when the size check has encoded it: encoding it once
    # saves ingest a tenth of its CPU per alert. Empty: not encoded yet.
    encoded: tuple[bytes, ...] = field(default=(), compare=False, repr=False)

    def json_of(self, position: int) -> bytes:
        """The JSON of ``incidents[position]``, as encoded by the size check or now."""
        if self.encoded:
            return self.encoded[position]
        return self.incidents[position].model_dump_json().encode()


@dataclass(frozen=True)
class Ignored:
    """A well-formed event that is not a closure (triggered, acknowledged, firing...): counted, never an error."""

    reason: str


@dataclass(frozen=True)
class Invalid:
    """A payload that cannot become an incident; it goes to the DLQ with this reason."""

    reason: str


Outcome = Accepted | Ignored | Invalid
