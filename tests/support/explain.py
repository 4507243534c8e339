"""Which plan the server picks for the commands a client sent: to prove a query uses the index meant for it."""

from typing import Any

from pymongo import monitoring
from pymongo.asynchronous.database import AsyncDatabase

QUERIES = ("find", "findAndModify")


class SentQueries(monitoring.CommandListener):
    """The queries (``find``, ``findAndModify``) a client sends, ready to be explained."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in QUERIES:
            self.commands.append({k: v for k, v in event.command.items() if not k.startswith("$") and k != "lsid"})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def stages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            found += stages(child)
    return found


async def explained(db: AsyncDatabase[dict[str, Any]], command: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The winning plan's stages, outermost first, and how many documents running it examined."""
    explanation = await db.command("explain", command, verbosity="executionStats")
    return stages(explanation["queryPlanner"]["winningPlan"]), explanation["executionStats"]["totalDocsExamined"]


def index_keys(plan: list[dict[str, Any]]) -> list[str] | None:
    """The keys of the index the plan scans (None: it scans none)."""
    scans = [stage for stage in plan if stage["stage"] == "IXSCAN"]
    return list(scans[0]["keyPattern"]) if scans else None
