"""The follow-up policy: when to remind, whom to escalate to, and when to ask whether the changes worked."""

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class EscalationLevel:
    """Escalate to ``target`` (a role the notifier resolves, e.g. ``team_lead``) ``after`` the due date passed."""

    after: timedelta
    target: str


def _default_reminders() -> tuple[timedelta, ...]:
    return (timedelta(days=2), timedelta(days=1))


def _default_escalations() -> tuple[EscalationLevel, ...]:
    return (
        EscalationLevel(after=timedelta(days=2), target="team_lead"),
        EscalationLevel(after=timedelta(days=7), target="management"),
    )


@dataclass(frozen=True)
class FollowupPolicy:
    reminders_before: tuple[timedelta, ...] = field(default_factory=_default_reminders)
    escalation_levels: tuple[EscalationLevel, ...] = field(default_factory=_default_escalations)
    effectiveness_check_after: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if any(lead <= timedelta(0) for lead in self.reminders_before):
            raise ValueError("reminders must come a positive time before the due date")
        if len(set(self.reminders_before)) != len(self.reminders_before):
            raise ValueError("two reminders with the same lead time would share one timer")
        afters = [level.after for level in self.escalation_levels]
        if any(after <= timedelta(0) for after in afters):
            raise ValueError("escalation levels must come a positive time after the due date")
        if afters != sorted(set(afters)):
            raise ValueError("escalation levels must be in increasing order of time, each at a different time")
        if any(not level.target.strip() for level in self.escalation_levels):
            raise ValueError("every escalation level needs a target")
        if self.effectiveness_check_after <= timedelta(0):
            raise ValueError("the effectiveness check must come a positive time after the items are done")
