"""The review policy: which incidents need a lessons-learned review, by when, who owns it, what must be filled.

The policy is a YAML file (``REVIEW_POLICY_FILE``; ``services/review/policy.default.yaml`` by default). This module
is its model: ``ReviewPolicy`` validates the file's content, so a typo fails start-up with the field named instead
of silently changing which incidents get reviewed. The model's defaults are the default file's behaviour.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from schemas import IncidentClosed, Severity, Source

# The parts of a record the policy can require before approval.
SectionName = Literal[
    "owner",
    "participants",
    "timeline",
    "analysis.what_went_well",
    "analysis.what_went_wrong",
    "analysis.response_effectiveness",
    "analysis.detection_and_prevention",
    "analysis.communication_and_coordination",
    "analysis.resource_allocation",
    "gaps",
    "contributing_factors",
    "recommendations",
    "action_items",
]
SECTION_NAMES: tuple[str, ...] = get_args(SectionName)

Need = Literal["required", "not_required"]
DayCount = Literal["calendar", "business"]


class PolicyError(ValueError):
    """The policy file is not a valid policy; the message names the file and the field."""


@dataclass(frozen=True)
class ReviewDecision:
    """What the policy says about one incident; stored on the record so the reason stays visible."""

    required: bool
    reason: str
    due_at: datetime | None
    rule: str | None = None
    owner: str | None = None
    required_sections: tuple[str, ...] = ()
    measurable_verification_required: bool = False


def _as_list(value: Any) -> Any:
    """Let the file say ``severity: critical`` where it means ``severity: [critical]``."""
    return [value] if isinstance(value, str) else value


def _as_value_lists(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _as_list(item) for key, item in value.items()}
    return value


Names = Annotated[frozenset[str], BeforeValidator(_as_list)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(Strict):
    """The ``when`` of a rule: every key given must match; a list matches any of its values. Case-insensitive."""

    severity: Annotated[frozenset[Severity], BeforeValidator(_as_list)] | None = None
    source: Annotated[frozenset[Source], BeforeValidator(_as_list)] | None = None
    service: Names | None = None
    team: Names | None = None
    labels: Annotated[dict[str, frozenset[str]], BeforeValidator(_as_value_lists)] | None = None

    def matches(self, incident: IncidentClosed) -> bool:
        return all(
            [
                self.severity is None or incident.severity in self.severity,
                self.source is None or incident.source in self.source,
                _one_of(incident.service, self.service),
                _one_of(incident.team, self.team),
                self.labels is None
                or all(_one_of(incident.labels.get(name), values) for name, values in self.labels.items()),
            ]
        )

    def describe(self) -> str:
        parts = [
            f"{name} in {', '.join(sorted(values))}"
            for name, values in (
                ("severity", self.severity),
                ("source", self.source),
                ("service", self.service),
                ("team", self.team),
            )
            if values is not None
        ]
        parts += [f"label {name} in {', '.join(sorted(values))}" for name, values in (self.labels or {}).items()]
        return "; ".join(parts) or "any incident"


def _one_of(value: str | None, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return True
    return value is not None and value.casefold() in {item.casefold() for item in allowed}


class Rule(Strict):
    name: str = Field(min_length=1, max_length=100)
    when: Match = Field(default_factory=Match)
    review: Need


class DueDates(Strict):
    """Days from the incident's resolution to the review's due date, by severity."""

    count: DayCount = Field(
        default="calendar", description="calendar, or business (Saturdays and Sundays, in UTC, do not count)"
    )
    days: dict[Severity, Annotated[int, Field(ge=0, le=365)]] = Field(
        default_factory=lambda: {
            Severity.CRITICAL: 5,
            Severity.HIGH: 7,
            Severity.MEDIUM: 14,
            Severity.LOW: 30,
            Severity.UNKNOWN: 14,
        }
    )
    default_days: int = Field(default=14, ge=0, le=365, description="For a severity missing from days")

    def due_at(self, severity: Severity, resolved_at: datetime) -> tuple[int, datetime]:
        days = self.days.get(severity, self.default_days)
        if self.count == "business":
            return days, add_business_days(resolved_at, days)
        return days, resolved_at + timedelta(days=days)


class Owners(Strict):
    """The default facilitator: by service first (most specific), then by team, then ``default``."""

    by_service: dict[str, str] = Field(default_factory=dict)
    by_team: dict[str, str] = Field(default_factory=dict)
    default: str | None = None

    def owner_for(self, incident: IncidentClosed) -> str | None:
        for key, table in ((incident.service, self.by_service), (incident.team, self.by_team)):
            if key is not None:
                found = {name.casefold(): owner for name, owner in table.items()}.get(key.casefold())
                if found is not None:
                    return found
        return self.default


class VerificationRules(Strict):
    """How remediations must prove they worked (see ``domain/verification.py``)."""

    measurable_required_for: Annotated[frozenset[Severity], BeforeValidator(_as_list)] = Field(
        default=frozenset({Severity.CRITICAL}),
        description="Severities whose reviews need a measurable (metric, alert or recurrence) verification to approve",
    )
    new_action_item_when_not_effective: bool = Field(
        default=True,
        description="A review reopened by a not_effective verdict needs a new action item before it closes again",
    )


def _default_rules() -> tuple[Rule, ...]:
    severe = Match(severity=frozenset({Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM}))
    return (Rule(name="critical-high-medium", when=severe, review="required"),)


class ReviewPolicy(Strict):
    """The whole policy file. The first rule whose ``when`` matches decides; if none does, ``otherwise``."""

    version: Literal[1] = 1
    rules: tuple[Rule, ...] = Field(default_factory=_default_rules)
    otherwise: Need = "not_required"
    due: DueDates = Field(default_factory=DueDates)
    required_sections: tuple[SectionName, ...] = ("owner", "analysis.what_went_wrong", "contributing_factors")
    owners: Owners = Field(default_factory=Owners)
    verification: VerificationRules = Field(default_factory=VerificationRules)

    @model_validator(mode="after")
    def _rule_names_are_unique(self) -> "ReviewPolicy":
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(repeated)}")
        return self

    def decide(self, incident: IncidentClosed) -> ReviewDecision:
        rule = next((rule for rule in self.rules if rule.when.matches(incident)), None)
        need = rule.review if rule is not None else self.otherwise
        why = (
            f"rule {rule.name!r} ({rule.when.describe()})"
            if rule is not None
            else f"no rule matched severity {incident.severity}, so otherwise: {self.otherwise}"
        )
        if need == "not_required":
            return ReviewDecision(
                required=False,
                reason=f"{why}: no review needed",
                due_at=None,
                rule=rule.name if rule else None,
            )
        days, due_at = self.due.due_at(incident.severity, incident.resolved_at)
        return ReviewDecision(
            required=True,
            reason=f"{why}: review required within {days} {self.due.count} days of resolution",
            due_at=due_at,
            rule=rule.name if rule else None,
            owner=self.owners.owner_for(incident),
            required_sections=self.required_sections,
            measurable_verification_required=incident.severity in self.verification.measurable_required_for,
        )


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` moved forward by ``days`` weekdays, keeping the time of day; weekends are judged in ``start``'s zone.

    Friday 10:00 + 1 is Monday 10:00; Saturday 10:00 + 1 is Monday 10:00 too (the weekend is skipped, not counted).
    """
    moment = start
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:  # Monday..Friday
            remaining -= 1
    return moment


def parse_policy(text: str, source: str = "policy") -> ReviewPolicy:
    """Parse and validate a policy file's text; ``PolicyError`` names ``source`` and every bad field."""
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise PolicyError(f"{source}: expected a mapping of policy settings at the top level")
    try:
        return ReviewPolicy.model_validate(content)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise PolicyError(f"{source}: invalid review policy: " + "; ".join(problems)) from None
