"""Which failures are an outage (wait and try the batch again) and which belong to one record (bound, then DLQ).

Retrying an outage per record would park every record in the DLQ while Kafka or MongoDB is away; retrying a
record's own problem without bound stalls its partition forever. Everything not known to be an outage is the
record's own problem.
"""

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from pymongo.errors import ConnectionFailure, PyMongoError


def is_outage(exc: BaseException) -> bool:
    """True for failures that say nothing about the record: a server unreachable or too slow to answer."""
    if isinstance(exc, (ConnectionFailure, KafkaConnectionError, KafkaTimeoutError, TimeoutError)):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    # A time limit that ran out (a write held up by a crashed writer's transaction, a server too slow to answer):
    # the record is fine, so it is redelivered, never dead-lettered.
    return isinstance(exc, PyMongoError) and exc.timeout


def describe(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason for logs and DLQ headers, bounded: an exception can carry the whole record."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
