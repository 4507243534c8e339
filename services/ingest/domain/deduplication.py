"""Which accepted incidents are fresh and which repeat one published within the de-duplication window."""

from collections.abc import Iterable, Set

from schemas import IncidentClosed


def fresh_incidents(incidents: Iterable[IncidentClosed], recently_published: Set[str]) -> list[IncidentClosed]:
    """Incidents not published within the window, each key once even if a payload repeats it."""
    fresh: list[IncidentClosed] = []
    seen = set(recently_published)
    for incident in incidents:
        if incident.incident_key not in seen:
            fresh.append(incident)
            seen.add(incident.incident_key)
    return fresh
