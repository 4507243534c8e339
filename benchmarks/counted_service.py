"""Runs one service with every MongoDB command it sends counted, for the benchmarks' database operations per incident.

    BENCH_OPS_FILE=ops.json .venv/bin/python benchmarks/counted_service.py services.review

The service is unchanged: a pymongo command listener, registered before the service creates its client, counts the
commands by name (``insert``, ``find``, ``update``, ``commitTransaction``...; server heartbeats are not commands and
are not counted), and the counts are written as JSON to ``BENCH_OPS_FILE`` when the process exits (a clean stop on
SIGTERM). Counted in the client, so other load on a shared database server does not show in them.
"""

import atexit
import json
import os
import runpy
import sys
from collections import Counter
from pathlib import Path

from pymongo import monitoring


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def main() -> None:
    module, target = sys.argv[1], Path(os.environ["BENCH_OPS_FILE"])
    counter = CommandCounter()
    monitoring.register(counter)
    atexit.register(lambda: target.write_text(json.dumps(dict(counter.counts))))
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
