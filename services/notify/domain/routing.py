"""The routing file: who people are, where they read, what they subscribe to; and who receives which notice, why.

The file (``NOTIFY_ROUTING_FILE``) is validated whole at start-up: an unknown key, a misspelt time zone, a
subscription naming nobody or a chat destination nobody configured stops the service with the field named, instead
of silently sending nothing. Webhook URLs are credentials and never appear here: a chat destination names a key of
``NOTIFY_WEBHOOK_URLS``.

Who receives what:
- reminders and overdue notices: the owner the event names (the review's facilitator or the action item's owner);
- escalations: the level's target, a role (``team_lead``, ``management``) looked up in the team's roles, then in the
  global roles, then as a person's name;
- effectiveness checks: the owner; remediation verdicts: the verifier, else the owner;
- a recorded verdict: the review's owner; a published postmortem: everyone known to have taken part;
- plus, for every notice, the subscriptions that match its kind, severity, team and service.
A notice whose person is not in the file goes to the team's channel instead, saying so. Nobody else is contacted.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas import Severity
from services.notify.domain.notices import Notice, NoticeKind, subject_of

ChannelName = Literal["email", "chat"]
ChatKind = Literal["slack", "mattermost", "teams"]
DAY = timedelta(days=1)
SHORTEST_DIGEST = timedelta(minutes=15)
# One address, no display name, no whitespace or line breaks (a header injection needs one).
EMAIL_PATTERN = r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"


class RoutingError(ValueError):
    """The routing file is not valid; the message names the file and every bad field."""


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _lower_names(value: Any) -> Any:
    value = _as_list(value)
    return [str(item).lower() for item in value] if isinstance(value, list) else value


Names = Annotated[frozenset[str], BeforeValidator(_lower_names)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuietHours(Strict):
    """Local times, in the person's time zone; ``start`` after ``end`` spans midnight (22:00 to 07:00)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("quiet hours need different start and end times")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local times: give the zone in time_zone, not here")
        return self


class ChatAddress(Strict):
    destination: Name = Field(description="A key of chat_destinations")
    handle: str | None = Field(default=None, max_length=100, description="Mention text, e.g. <@U0123> or @alice")


class Person(Strict):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    chat: ChatAddress | None = None
    aliases: Names = frozenset()
    time_zone: str = "UTC"
    quiet_hours: QuietHours | None = None
    digest: timedelta | None = Field(default=None, description="Group reminders into one message per period")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from None
        return value

    @field_validator("digest")
    @classmethod
    def _period_divides_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return None
        if not SHORTEST_DIGEST <= value <= DAY or DAY % value:
            raise ValueError("a digest period is between PT15M and P1D and divides a day (PT1H, PT4H, P1D...)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> "Person":
        if self.email is None and self.chat is None:
            raise ValueError("a person needs an email address or a chat address")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class ChatDestination(Strict):
    """An incoming webhook; its URL (a credential) is ``NOTIFY_WEBHOOK_URLS[<this name>]``."""

    kind: ChatKind


class Team(Strict):
    channel: Name | None = Field(default=None, description="A chat destination for the team's notices")
    roles: dict[Name, Name] = Field(default_factory=dict, description="Role (e.g. team_lead) to person")


class Subscription(Strict):
    """A person or a chat destination that wants notices matching every filter given (a list matches any value)."""

    person: Name | None = None
    channel: Name | None = None
    events: Annotated[frozenset[NoticeKind], BeforeValidator(_as_list)] | None = None
    severity: Annotated[frozenset[Severity], BeforeValidator(_as_list)] | None = None
    team: Names | None = None
    service: Names | None = None

    @model_validator(mode="after")
    def _one_subscriber(self) -> "Subscription":
        if (self.person is None) == (self.channel is None):
            raise ValueError("a subscription names exactly one of person or channel")
        return self

    def matches(self, notice: Notice) -> bool:
        return (
            (self.events is None or notice.kind in self.events)
            and (self.severity is None or notice.severity in self.severity)
            and (self.team is None or (notice.team or "").lower() in self.team)
            and (self.service is None or (notice.service or "").lower() in self.service)
        )

    def describe(self) -> str:
        what = ", ".join(sorted(self.events)) if self.events else "every notice"
        filters = [
            f"severity {'/'.join(sorted(s.value for s in self.severity))}" if self.severity else "",
            f"team {'/'.join(sorted(self.team))}" if self.team else "",
            f"service {'/'.join(sorted(self.service))}" if self.service else "",
        ]
        shown = "; ".join(f for f in filters if f)
        return f"{what} ({shown})" if shown else what


class Routing(Strict):
    people: dict[Name, Person] = Field(default_factory=dict)
    chat_destinations: dict[Name, ChatDestination] = Field(default_factory=dict)
    teams: dict[Name, Team] = Field(default_factory=dict)
    roles: dict[Name, Annotated[tuple[Name, ...], BeforeValidator(_as_list)]] = Field(default_factory=dict)
    subscriptions: tuple[Subscription, ...] = ()

    @model_validator(mode="after")
    def _references_exist(self) -> "Routing":
        problems: list[str] = []

        def person(where: str, name: str) -> None:
            if name not in self.people:
                problems.append(f"{where}: no person {name!r} in people")

        def destination(where: str, name: str | None) -> None:
            if name is not None and name not in self.chat_destinations:
                problems.append(f"{where}: no chat destination {name!r} in chat_destinations")

        owners: dict[str, str] = {}
        for pid, entry in self.people.items():
            destination(f"people.{pid}.chat.destination", entry.chat.destination if entry.chat else None)
            for alias in {pid.lower(), *entry.aliases, *([entry.email.lower()] if entry.email else [])}:
                if owners.setdefault(alias, pid) != pid:
                    problems.append(f"people.{pid}: the name {alias!r} is also {owners[alias]!r}'s")
        for tid, team in self.teams.items():
            destination(f"teams.{tid}.channel", team.channel)
            for role, pid in team.roles.items():
                person(f"teams.{tid}.roles.{role}", pid)
        for role, pids in self.roles.items():
            for pid in pids:
                person(f"roles.{role}", pid)
        for index, subscription in enumerate(self.subscriptions):
            if subscription.person is not None:
                person(f"subscriptions.{index}.person", subscription.person)
            destination(f"subscriptions.{index}.channel", subscription.channel)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def person_named(self, name: str | None) -> str | None:
        """The person an event means by ``name``: their id, an alias or their email address (any case)."""
        if not name:
            return None
        wanted = name.strip().lower()
        for pid, entry in self.people.items():
            if wanted == pid.lower() or wanted in entry.aliases or (entry.email and wanted == entry.email.lower()):
                return pid
        return None


def parse_routing(text: str, source: str = "routing") -> Routing:
    """Parse and validate a routing file's text; ``RoutingError`` names ``source`` and every bad field."""
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(content, Mapping):
        raise RoutingError(f"{source}: expected a mapping (people, chat_destinations, teams, roles, subscriptions)")
    try:
        return Routing.model_validate(content)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise RoutingError(f"{source}: invalid routing file: " + "; ".join(problems)) from None


@dataclass(frozen=True)
class Recipient:
    """``person:<id>`` or ``channel:<destination>``, and why they receive the notice (said in the message)."""

    key: str
    reason: str


@dataclass(frozen=True)
class Delivery:
    recipient: str
    channel: ChannelName
    reason: str

    @property
    def key_part(self) -> str:
        return f"{self.recipient}/{self.channel}"


def _person(pid: str) -> str:
    return f"person:{pid}"


def _team_channel(routing: Routing, notice: Notice, why: str) -> list[Recipient]:
    team = routing.teams.get(notice.team or "")
    if team is None or team.channel is None:
        return []
    return [Recipient(f"channel:{team.channel}", f"{why}, so it goes to team {notice.team}'s channel.")]


def _owner(routing: Routing, notice: Notice, name: str | None, role: str) -> list[Recipient]:
    pid = routing.person_named(name)
    if pid is not None:
        return [Recipient(_person(pid), f"You are {role}.")]
    if name:
        return _team_channel(routing, notice, f"Its owner ({name}) is not in notify's routing file")
    return _team_channel(routing, notice, f"This {subject_of(notice).replace('_', ' ')} has no owner")


def _escalation(routing: Routing, notice: Notice) -> list[Recipient]:
    target = notice.escalation_target or ""
    level = notice.escalation_level or 1
    team = routing.teams.get(notice.team or "")
    if team is not None and target in team.roles:
        return [Recipient(_person(team.roles[target]), f"Escalation level {level}: you are {target} of {notice.team}.")]
    if target in routing.roles:
        return [
            Recipient(_person(pid), f"Escalation level {level}: you are on the {target} list.")
            for pid in routing.roles[target]
        ]
    pid = routing.person_named(target)
    if pid is not None:
        return [Recipient(_person(pid), f"Escalation level {level} names you.")]
    return _team_channel(routing, notice, f"Escalation level {level} goes to {target}, who is not configured")


def direct_recipients(routing: Routing, notice: Notice) -> list[Recipient]:
    """Those the notice is about or addressed to, before subscriptions."""
    if notice.kind == "Escalated":
        return _escalation(routing, notice)
    if notice.kind == "ReviewPublished":
        found = [routing.person_named(name) for name in notice.participants]
        return [Recipient(_person(pid), "You took part in this review.") for pid in found if pid is not None]
    if notice.kind == "RemediationVerified" and notice.verifier:
        return _owner(routing, notice, notice.verifier, "this remediation's verifier")
    if notice.kind == "RemediationVerified":
        return _owner(routing, notice, notice.owner, "this action item's owner (it names no verifier)")
    # Reminders, overdue notices, effectiveness checks, recorded verdicts: whoever owns the subject.
    item = subject_of(notice) == "action_item" and notice.kind != "VerificationRecorded"
    role = "this action item's owner" if item else "this review's facilitator (its owner)"
    return _owner(routing, notice, notice.owner, role)


def recipients(routing: Routing, notice: Notice) -> list[Recipient]:
    """Everyone who receives ``notice``, once each, with the first (most direct) reason."""
    found: dict[str, Recipient] = {}
    for recipient in direct_recipients(routing, notice):
        found.setdefault(recipient.key, recipient)
    for subscription in routing.subscriptions:
        if not subscription.matches(notice):
            continue
        if subscription.person is not None:
            key, who = _person(subscription.person), "You subscribed"
        else:
            key, who = f"channel:{subscription.channel}", "This channel subscribed"
        found.setdefault(key, Recipient(key, f"{who} to {subscription.describe()}."))
    return list(found.values())


def deliveries(routing: Routing, notice: Notice) -> list[Delivery]:
    """One delivery per recipient and channel: a person by email and by chat (each that they have)."""
    result: list[Delivery] = []
    for recipient in recipients(routing, notice):
        kind, _, name = recipient.key.partition(":")
        if kind == "channel":
            result.append(Delivery(recipient.key, "chat", recipient.reason))
            continue
        person = routing.people[name]
        if person.email:
            result.append(Delivery(recipient.key, "email", recipient.reason))
        if person.chat:
            result.append(Delivery(recipient.key, "chat", recipient.reason))
    return result


def chat_destination_of(routing: Routing, recipient: str) -> tuple[str, str | None] | None:
    """The webhook name and mention handle a recipient is reached at by chat."""
    kind, _, name = recipient.partition(":")
    if kind == "channel":
        return (name, None) if name in routing.chat_destinations else None
    person = routing.people.get(name)
    if person is None or person.chat is None:
        return None
    return person.chat.destination, person.chat.handle


def email_of(routing: Routing, recipient: str) -> str | None:
    kind, _, name = recipient.partition(":")
    person = routing.people.get(name) if kind == "person" else None
    return person.email if person else None


def person_of(routing: Routing, recipient: str) -> Person | None:
    kind, _, name = recipient.partition(":")
    return routing.people.get(name) if kind == "person" else None
