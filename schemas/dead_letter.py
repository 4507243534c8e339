"""The dead-letter contract: a record that cannot be processed goes to ``<topic>.dlq`` with these headers.

The record keeps its original key and bytes; the headers say why, where it came from and after how many attempts,
so an operator can fix the cause and replay it.
"""

from collections.abc import Mapping
from datetime import datetime

DLQ_SUFFIX = ".dlq"
REASON = "dlq-reason"
ORIGINAL_TOPIC = "dlq-original-topic"
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
ATTEMPTS = "dlq-attempts"
FAILED_AT = "dlq-failed-at"
FAILED_BY = "dlq-failed-by"

# Kafka headers are small; a reason longer than this is cut, never the record.
MAX_REASON_LENGTH = 2_000


def dlq_topic_for(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def dead_letter_headers(
    original: Mapping[str, str],
    *,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    attempts: int,
    failed_at: datetime,
    failed_by: str,
) -> dict[str, str]:
    """The original headers plus the dead-letter ones (ours win on a name clash)."""
    return {
        **original,
        REASON: reason[:MAX_REASON_LENGTH],
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        ATTEMPTS: str(attempts),
        FAILED_AT: failed_at.isoformat(),
        FAILED_BY: failed_by,
    }
