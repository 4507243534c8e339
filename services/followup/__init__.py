"""Follow-up: tracks every review to the end (deadlines, reminders, escalation) and exports the numbers."""
