"""Why the domain refuses a change. Each refusal carries a stable ``code`` the API returns beside the message."""


class ReviewRefusedError(Exception):
    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransitionRefusedError(ReviewRefusedError):
    """The workflow does not allow this move now; the message says why."""

    code = "transition_refused"


class NotEditableError(ReviewRefusedError):
    """The review's status does not allow this edit (e.g. an approved review is frozen until sent back)."""

    code = "not_editable"


class UnknownActionItemError(ReviewRefusedError):
    code = "unknown_action_item"


class UnknownTimelineEntryError(ReviewRefusedError):
    code = "unknown_timeline_entry"


class ImportedTimelineEntryError(ReviewRefusedError):
    """Entries imported from the incident tool are its record of what happened: read-only."""

    code = "imported_timeline_entry"


class InvalidEditError(ReviewRefusedError):
    """The edit is well-formed but makes no sense for this review; ``field`` names the culprit."""

    code = "invalid_edit"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
