"""Write (or check) the JSON Schema of every event: ``python -m schemas.export [--check]``.

The files in ``schemas/json/`` are what other teams read; ``--check`` fails when they drift from the models.
"""

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.followup import (
    ActionItemOverdue,
    EffectivenessCheckDue,
    Escalated,
    RemediationVerified,
    ReminderDue,
    ReviewOverdue,
)
from schemas.incident import IncidentClosed
from schemas.review import (
    ActionItemAdded,
    ActionItemUpdated,
    ReviewOpened,
    ReviewRecurred,
    ReviewStatusChanged,
    ReviewUpdated,
    VerificationRecorded,
)

SCHEMA_DIR = Path(__file__).parent / "json"
EXPORTED: dict[str, type[BaseModel]] = {
    "incident_closed.v1.json": IncidentClosed,
    "review_opened.v1.json": ReviewOpened,
    "review_updated.v1.json": ReviewUpdated,
    "review_status_changed.v1.json": ReviewStatusChanged,
    "action_item_added.v1.json": ActionItemAdded,
    "action_item_updated.v1.json": ActionItemUpdated,
    "review_recurred.v1.json": ReviewRecurred,
    "reminder_due.v1.json": ReminderDue,
    "review_overdue.v1.json": ReviewOverdue,
    "action_item_overdue.v1.json": ActionItemOverdue,
    "escalated.v1.json": Escalated,
    "effectiveness_check_due.v1.json": EffectivenessCheckDue,
    "remediation_verified.v1.json": RemediationVerified,
    "verification_recorded.v1.json": VerificationRecorded,
}


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"


def drifted(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the exported files whose content differs from what the models produce now."""
    return [
        name
        for name, model in EXPORTED.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != render(model)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from the models")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for name in stale:
            print(f"schemas/json/{name} is out of date: run python -m schemas.export", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, model in EXPORTED.items():
        (SCHEMA_DIR / name).write_text(render(model), encoding="utf-8")
        print(f"wrote schemas/json/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
