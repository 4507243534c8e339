"""Between HTML forms and the domain's edits: what a form shows for a review, what a posted form asks to change.

Each form carries, hidden, the values it was drawn with (``base``). What is sent to the service is only what the
person changed against them, so a save touches only their fields; and after a conflict, comparing ``base`` with the
review as now stored shows exactly what the other person changed. Posted values always come back to the page as they
were typed (``FormRefusal`` carries them), whatever went wrong.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from schemas.verification import VerificationPlan
from services.review.domain.editing import (
    ActionItemDraft,
    ActionItemEdit,
    SectionEdit,
    TimelineEntryDraft,
    TimelineEntryEdit,
)
from services.review.domain.record import ActionItem, Review, ReviewTimelineEntry
from services.review.domain.verification import ManualVerdict
from services.review.web.formatting import field_time, parse_field_time

Values = dict[str, Any]

ANALYSIS_LISTS = ("what_went_well", "what_went_wrong")
ANALYSIS_TEXTS = (
    "response_effectiveness",
    "detection_and_prevention",
    "communication_and_coordination",
    "resource_allocation",
)
GAPS = ("process", "technology", "training")
ITEM_FIELDS = (
    "title",
    "description",
    "owner",
    "due_at",
    "priority",
    "category",
    "status",
    "status_reason",
    "ticket_url",
    "verification_method",
    "verification_verifier",
    "verification_query",
    "verification_comparison",
    "verification_threshold",
    "verification_alert_name",
    "verification_alert_matchers",
    "verification_window_seconds",
    "verification_stabilisation_seconds",
)
# The verification plan's fields in an item's form: ``verification_<plan field>``, so the plan's own validation errors
# land next to the field they are about; they are sent together, as one plan, when any of them changed.
PLAN_FIELDS = tuple(name for name in ITEM_FIELDS if name.startswith("verification_"))
VERDICT_FIELDS = ("verdict", "evidence", "links")
TIMELINE_FIELDS = ("at", "kind", "message", "actor")
# Blank rows the page offers for new participants and contributing factors (no script needed to add one).
BLANK_ROWS = 2


@dataclass
class FormRefusal(Exception):  # noqa: N818 (a refusal shown to people, not a program error)
    """Why a posted form was not saved: a message per field (form names) and one for the whole form."""

    errors: dict[str, str] = field(default_factory=dict)
    summary: str | None = None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _rows(form: FormData, prefix: str, names: tuple[str, ...]) -> list[Values]:
    """Rows posted as ``<prefix>-<n>-<name>``, in order of ``n``; rows left wholly blank are dropped."""
    numbers = sorted(
        {int(found.group(1)) for key in form if (found := re.fullmatch(rf"{prefix}-(\d{{1,3}})-\w+", key))}
    )
    rows = [{name: _text(form, f"{prefix}-{number}-{name}").strip() for name in names} for number in numbers]
    return [row for row in rows if any(row[name] for name in names if name in ("name", "description", "role"))]


def sections_values(review: Review) -> Values:
    values: Values = {
        "owner": review.owner or "",
        "due_at": field_time(review.due_at),
        "participants": [
            {"name": p.name, "function": str(p.function), "role": p.role or ""} for p in review.participants
        ],
        "factors": [{"category": str(f.category), "description": f.description} for f in review.contributing_factors],
        "recommendations": "\n".join(review.recommendations),
        "no_action_needed_reason": review.no_action_needed_reason or "",
        "related_reviews": "\n".join(review.related_reviews),
    }
    for name in ANALYSIS_LISTS:
        values[name] = "\n".join(getattr(review.analysis, name))
    for name in ANALYSIS_TEXTS:
        values[name] = getattr(review.analysis, name) or ""
    for name in GAPS:
        values[f"gaps_{name}"] = "\n".join(getattr(review.gaps, name))
    return values


def posted_sections(form: FormData) -> Values:
    values: Values = {
        name: _text(form, name)
        for name in (
            "owner",
            "due_at",
            "recommendations",
            "no_action_needed_reason",
            "related_reviews",
            *ANALYSIS_LISTS,
            *ANALYSIS_TEXTS,
            *(f"gaps_{name}" for name in GAPS),
        )
    }
    values["participants"] = _rows(form, "participants", ("name", "function", "role"))
    values["factors"] = _rows(form, "factors", ("category", "description"))
    return values


def plan_values(plan: VerificationPlan | None) -> Values:
    if plan is None:
        return dict.fromkeys(PLAN_FIELDS, "")
    return {
        "verification_method": str(plan.method),
        "verification_verifier": plan.verifier or "",
        "verification_query": plan.query or "",
        "verification_comparison": str(plan.comparison or ""),
        "verification_threshold": "" if plan.threshold is None else str(plan.threshold),
        "verification_alert_name": plan.alert_name or "",
        "verification_alert_matchers": "\n".join(f"{label}={value}" for label, value in plan.alert_matchers.items()),
        "verification_window_seconds": "" if plan.window_seconds is None else str(plan.window_seconds),
        "verification_stabilisation_seconds": ""
        if plan.stabilisation_seconds is None
        else str(plan.stabilisation_seconds),
    }


def item_values(item: ActionItem) -> Values:
    return {
        "title": item.title,
        "description": item.description,
        "owner": item.owner or "",
        "due_at": field_time(item.due_at),
        "priority": str(item.priority),
        "category": str(item.category),
        "status": str(item.status),
        "status_reason": item.status_reason or "",
        "ticket_url": item.ticket_url or "",
        **plan_values(item.verification),
    }


def posted_values(form: FormData, names: tuple[str, ...]) -> Values:
    return {name: _text(form, name) for name in names}


def base_of(form: FormData) -> Values:
    """The values the form was drawn with (its hidden ``base``); empty when missing or unreadable."""
    try:
        base = json.loads(_text(form, "base") or "{}")
    except json.JSONDecodeError:
        return {}
    return base if isinstance(base, dict) else {}


def changed(values: Values, base: Mapping[str, Any]) -> set[str]:
    """The fields whose value differs from ``base``; a time sent as ``10:00`` for a drawn ``10:00:00`` is the same."""
    return {name for name, value in values.items() if base.get(name) != value and not _same_time(name, value, base)}


def _same_time(name: str, value: Any, base: Mapping[str, Any]) -> bool:
    if name not in ("due_at", "at") or not isinstance(value, str) or not isinstance(base.get(name), str):
        return False
    try:
        return parse_field_time(value) == parse_field_time(base[name])
    except ValueError:
        return False


def _time(values: Values, name: str, errors: dict[str, str]) -> Any:
    try:
        return parse_field_time(values[name])
    except ValueError as exc:
        errors[name] = str(exc)
        return None


def _blank_is_none(text: str) -> str | None:
    return text.strip() or None


def section_edit(values: Values, base: Mapping[str, Any]) -> SectionEdit:
    """The edit of what changed against ``base``; ``FormRefusal`` naming the fields that cannot be taken."""
    errors: dict[str, str] = {}
    edit: Values = {}
    todo = changed(values, base)
    for name in todo & {"owner", "no_action_needed_reason"}:
        edit[name] = _blank_is_none(values[name])
    if "due_at" in todo:
        edit["due_at"] = _time(values, "due_at", errors)
    if "participants" in todo:
        edit["participants"] = [{**row, "role": row["role"] or None} for row in values["participants"]]
    if "factors" in todo:
        edit["contributing_factors"] = values["factors"]
    for name in todo & {"recommendations", "related_reviews"}:
        edit[name] = _lines(values[name])
    analysis: Values = {name: _lines(values[name]) for name in ANALYSIS_LISTS if name in todo}
    analysis |= {name: _blank_is_none(values[name]) for name in ANALYSIS_TEXTS if name in todo}
    if analysis:
        edit["analysis"] = analysis
    gaps = {name: _lines(values[f"gaps_{name}"]) for name in GAPS if f"gaps_{name}" in todo}
    if gaps:
        edit["gaps"] = gaps
    return _validated(SectionEdit, edit, errors)


def timeline_entry(values: Values) -> TimelineEntryDraft:
    errors: dict[str, str] = {}
    entry = {
        "at": _time(values, "at", errors),
        "kind": values["kind"],
        "message": values["message"].strip(),
        "actor": _blank_is_none(values["actor"]),
    }
    return _validated(TimelineEntryDraft, entry, errors)


def timeline_values(entry: ReviewTimelineEntry) -> Values:
    return {"at": field_time(entry.at), "kind": entry.kind, "message": entry.message, "actor": entry.actor or ""}


def timeline_entry_edit(values: Values, base: Mapping[str, Any]) -> TimelineEntryEdit:
    """The edit of an added entry's fields the person changed against ``base``."""
    errors: dict[str, str] = {}
    todo = changed(values, base)
    edit: Values = {}
    if "at" in todo:
        edit["at"] = _time(values, "at", errors)
        if edit["at"] is None:
            errors.setdefault("at", "when it happened is required")
    for name in todo & {"kind", "message"}:
        edit[name] = values[name].strip()
    if "actor" in todo:
        edit["actor"] = _blank_is_none(values["actor"])
    return _validated(TimelineEntryEdit, edit, errors)


def _matchers(text: str, errors: dict[str, str]) -> dict[str, str]:
    matchers: dict[str, str] = {}
    for line in _lines(text):
        label, equals, value = line.partition("=")
        if not equals or not label.strip():
            errors["verification_alert_matchers"] = f"write one matcher per line as label=value, not {line!r}"
            continue
        matchers[label.strip()] = value.strip()
    return matchers


def verification_plan(values: Values, errors: dict[str, str]) -> Values | None:
    """The plan the form describes (validated by the domain with the rest of the edit); None when no method is chosen.

    Fields left blank are left out, so the domain's defaults (window and delay by priority) and its rules (which
    fields belong to which method) apply exactly as through the API.
    """
    method = values.get("verification_method", "").strip()
    if not method:
        if any(values.get(name, "").strip() for name in PLAN_FIELDS):
            errors["verification_method"] = "choose how success is measured, or clear the verification's fields"
        return None
    plan: Values = {"method": method}
    for name in PLAN_FIELDS:
        text = values.get(name, "").strip()
        key = name.removeprefix("verification_")
        if not text or key == "method":
            continue
        plan[key] = _matchers(text, errors) if key == "alert_matchers" else text
    return plan


def _item_fields(values: Values, names: set[str], errors: dict[str, str]) -> Values:
    fields: Values = {}
    if names & set(PLAN_FIELDS):
        fields["verification"] = verification_plan(values, errors)
    for name in names - set(PLAN_FIELDS):
        if name == "due_at":
            fields[name] = _time(values, name, errors)
        elif name in ("owner", "status_reason", "ticket_url"):
            fields[name] = _blank_is_none(values[name])
        elif name == "description":
            fields[name] = values[name].strip()
        else:
            fields[name] = values[name]
    return fields


def action_item_draft(values: Values) -> ActionItemDraft:
    errors: dict[str, str] = {}
    given = {name for name in ITEM_FIELDS if values.get(name, "").strip()}
    return _validated(ActionItemDraft, _item_fields(values, given, errors), errors)


def action_item_edit(values: Values, base: Mapping[str, Any]) -> ActionItemEdit:
    errors: dict[str, str] = {}
    todo = changed(values, base)
    if "status" in todo:
        todo.add("status_reason")  # a new status is judged with the reason shown beside it
    return _validated(ActionItemEdit, _item_fields(values, todo, errors), errors)


def manual_verdict(values: Values) -> ManualVerdict:
    """A verifier's verdict as the form states it: evidence links one per line."""
    verdict = {"verdict": values["verdict"], "evidence": values["evidence"], "links": _lines(values["links"])}
    return _validated(ManualVerdict, verdict, {})


def field_name(loc: tuple[int | str, ...]) -> str:
    """The form field a validation error is about: ``("participants", 0, "name")`` is ``participants-0-name``."""
    parts = [str(part) for part in loc]
    if not parts:
        return "form"
    head = parts[0]
    if head == "verification":
        return f"verification_{parts[1]}" if len(parts) > 1 else "verification_method"
    if head in ("analysis", "gaps") and len(parts) > 1:
        return parts[1] if head == "analysis" else f"gaps_{parts[1]}"
    if head in ("participants", "contributing_factors") and len(parts) > 2:
        prefix = "factors" if head == "contributing_factors" else head
        return f"{prefix}-{parts[1]}-{parts[2]}"
    return {"contributing_factors": "factors"}.get(head, head)


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: Values, errors: dict[str, str]) -> M:
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            errors.setdefault(field_name(error["loc"]), error["msg"].removeprefix("Value error, "))
        raise FormRefusal(errors) from None
    if errors:
        raise FormRefusal(errors)
    return validated
