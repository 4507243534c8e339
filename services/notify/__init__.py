"""Notify: carries follow-up and review events to people by email and chat, routed by a YAML file."""
