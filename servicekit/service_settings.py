"""Settings every service shares, with their bounds checked once; each service subclasses with its own prefix."""

from pydantic import Field
from pydantic_settings import BaseSettings

# What one attempt at a record is allowed, when nothing bounds it more tightly: a few round trips to MongoDB.
ATTEMPT_ALLOWANCE_SECONDS = 1.0


class ServiceSettings(BaseSettings):
    """The HTTP surface, shutdown and batch consumption of one service (subclasses set ``env_prefix``)."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65_535)
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)
    # A request whose headers or body do not arrive within this long is answered 408 and closed (slow clients).
    http_read_timeout_seconds: float = Field(default=15.0, gt=0)
    # Records handled together and committed once.
    batch_max_records: int = Field(default=100, ge=1, le=10_000)
    # How long the broker may hold a fetch to gather more records (0: hand over whatever is there at once). Under a
    # steady trickle this turns many one-record batches, each paying its round trips to MongoDB, into fewer fuller
    # ones, at the cost of at most this much latency per stage; under load a batch fills at once and never waits.
    batch_wait_ms: int = Field(default=300, ge=0, le=5_000)
    # A record that keeps failing for a reason other than an outage goes to the DLQ after this many attempts.
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_seconds: float = Field(default=0.5, ge=0, le=60)

    @property
    def attempt_allowance_seconds(self) -> float:
        """How long one attempt at a record may take, for sizing the consumer's poll interval (``servicekit.batches``).

        A service whose attempts wait on something with its own, longer time limit (a transaction) answers that.
        """
        return ATTEMPT_ALLOWANCE_SECONDS
