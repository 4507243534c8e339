"""Event contracts shared by every incident-lessons service.

Only this package is imported by more than one service: it is the wire contract, so every model is frozen,
rejects unknown fields, and has a JSON Schema exported beside it (``python -m schemas.export``).
"""

from schemas.base import Event, Text, utc_datetime, validation_summary
from schemas.dead_letter import dead_letter_headers, dlq_topic_for
from schemas.followup import (
    FOLLOWUP_EVENT_TYPES,
    ActionItemOverdue,
    AnyFollowupEvent,
    EffectivenessCheckDue,
    Escalated,
    FollowupEvent,
    ReminderDue,
    ReviewOverdue,
    followup_event_adapter,
    followup_event_id,
)
from schemas.incident import (
    SOURCES,
    IncidentClosed,
    Severity,
    Source,
    TimelineEntry,
    incident_key_for,
)
from schemas.review import (
    REVIEW_EVENT_TYPES,
    ActionItemAdded,
    ActionItemCategory,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemUpdated,
    AnyReviewEvent,
    ReviewEvent,
    ReviewOpened,
    ReviewRecurred,
    ReviewStatus,
    ReviewStatusChanged,
    ReviewUpdated,
    review_event_adapter,
)

__all__ = [
    "FOLLOWUP_EVENT_TYPES",
    "REVIEW_EVENT_TYPES",
    "SOURCES",
    "ActionItemAdded",
    "ActionItemCategory",
    "ActionItemOverdue",
    "ActionItemPriority",
    "ActionItemStatus",
    "ActionItemUpdated",
    "AnyFollowupEvent",
    "AnyReviewEvent",
    "EffectivenessCheckDue",
    "Escalated",
    "Event",
    "FollowupEvent",
    "IncidentClosed",
    "ReminderDue",
    "ReviewEvent",
    "ReviewOpened",
    "ReviewOverdue",
    "ReviewRecurred",
    "ReviewStatus",
    "ReviewStatusChanged",
    "ReviewUpdated",
    "Severity",
    "Source",
    "Text",
    "TimelineEntry",
    "dead_letter_headers",
    "dlq_topic_for",
    "followup_event_adapter",
    "followup_event_id",
    "incident_key_for",
    "review_event_adapter",
    "utc_datetime",
    "validation_summary",
]
