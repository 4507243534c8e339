"""Reads the routing file named by ``NOTIFY_ROUTING_FILE`` and checks it against the configured webhooks."""

from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from services.notify.domain.routing import Routing, RoutingError, parse_routing


def load_routing(path: Path | None, webhooks: Mapping[str, SecretStr]) -> Routing:
    """The validated routing; ``RoutingError`` names the file and the field, or the destination without a URL."""
    if path is None:
        return Routing()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read the routing file (NOTIFY_ROUTING_FILE): {exc.strerror}") from None
    routing = parse_routing(text, source=str(path))
    missing = sorted(set(routing.chat_destinations) - set(webhooks))
    if missing:
        raise RoutingError(f"{path}: chat destinations without a URL in NOTIFY_WEBHOOK_URLS: {', '.join(missing)}")
    return routing
