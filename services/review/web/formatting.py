"""How values read on a page: times in UTC, durations, status names, and the form value of a time."""

from datetime import UTC, datetime, timedelta

from schemas import ReviewStatus

# The value a ``datetime-local`` field shows and sends: to the second, in UTC (the page says so beside the field).
FIELD_TIME = "%Y-%m-%dT%H:%M:%S"
FIELD_TIME_SHORT = "%Y-%m-%dT%H:%M"

STATUS_NAMES = {
    ReviewStatus.OPEN: "Open",
    ReviewStatus.IN_REVIEW: "In review",
    ReviewStatus.APPROVED: "Approved",
    ReviewStatus.PUBLISHED: "Published",
    ReviewStatus.CLOSED: "Closed",
    ReviewStatus.NOT_REQUIRED: "Not required",
    ReviewStatus.CANCELLED: "Cancelled",
}


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value is not None else "—"


def duration(started: datetime | None, ended: datetime | None) -> str:
    if started is None or ended is None or ended < started:
        return "unknown"
    minutes = int((ended - started) / timedelta(minutes=1))
    days, rest = divmod(minutes, 60 * 24)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes or not parts else []
    return " ".join(parts)


def status_name(status: str) -> str:
    try:
        return STATUS_NAMES[ReviewStatus(status)]
    except ValueError:
        return status


def words(value: str) -> str:
    """An enum value as words: ``monitoring_alerting`` reads "monitoring alerting"."""
    return value.replace("_", " ")


def field_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime(FIELD_TIME) if value is not None else ""


def parse_field_time(text: str) -> datetime | None:
    """A ``datetime-local`` field's value (to the minute or the second) as a UTC time; None when blank."""
    text = text.strip()
    if not text:
        return None
    for pattern in (FIELD_TIME, FIELD_TIME_SHORT):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError("give a date and time as YYYY-MM-DDTHH:MM, in UTC")
