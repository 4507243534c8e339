"""Reads the review policy file named by ``REVIEW_POLICY_FILE``; a missing or invalid file stops start-up."""

from pathlib import Path

from services.review.domain.policy import PolicyError, ReviewPolicy, parse_policy


def load_policy(path: Path) -> ReviewPolicy:
    """The validated policy; ``PolicyError`` names the file and, for a bad value, the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the review policy file (REVIEW_POLICY_FILE): {exc.strerror}") from None
    return parse_policy(text, source=str(path))
