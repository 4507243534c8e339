"""Runs the MongoDB-compatible server (SecantusDB) with its CPU added up per command and collection, for finding what
the pipeline costs the database server, the bottleneck on this machine.

    BENCH_SERVER_CPU_FILE=server-cpu.txt .venv/bin/python benchmarks/server_cpu.py <the arguments of secantusd-py>

The server is unchanged, except that its command dispatcher is wrapped: each command's thread CPU time (not wall time,
so other load on the machine does not show in it) is added to its line (command, database.collection, ``txn`` for a
statement of a transaction), with the number of calls and of documents it carried. The table, largest first, is
written to ``BENCH_SERVER_CPU_FILE`` when the server stops (SIGTERM). A diagnostic: it patches one function of the
pinned server version, and says so when that function is missing.
"""

import atexit
import functools
import importlib
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Imported by name: the server ships no type information.
server: Any = importlib.import_module("secantus.server")
Dispatch = Callable[[dict[str, Any], Any], Any]
dispatch: Dispatch | None = getattr(server, "dispatch", None)

totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
lock = threading.Lock()


def line_of(command: dict[str, Any], database: str) -> tuple[str, int]:
    name = next(iter(command))
    target = command.get(name)
    collection = target if isinstance(target, str) else ""
    in_transaction = " txn" if command.get("autocommit") is False else ""
    documents = command.get("documents") or command.get("updates") or command.get("deletes") or ()
    return f"{name} {database}.{collection}{in_transaction}", len(documents)


def counted(original: Dispatch, command: dict[str, Any], context: Any) -> Any:
    started = time.thread_time_ns()
    try:
        return original(command, context)
    finally:
        spent = time.thread_time_ns() - started
        line, documents = line_of(command, getattr(context, "db_name", None) or "")
        with lock:
            entry = totals[line]
            entry[0] += spent
            entry[1] += 1
            entry[2] += documents


def write_table() -> None:
    rows = sorted(totals.items(), key=lambda item: -item[1][0])
    total = sum(entry[0] for _, entry in rows) or 1
    lines = [f"server CPU in commands {total / 1e9:.2f} s"]
    lines += [
        f"{spent / 1e9:8.2f} s {spent / total * 100:5.1f}%  calls {calls:7d}  documents {documents:8d}  {line}"
        for line, (spent, calls, documents) in rows
    ]
    Path(os.environ.get("BENCH_SERVER_CPU_FILE", "server-cpu.txt")).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if dispatch is None:
        sys.exit("this SecantusDB version has no secantus.server.dispatch to wrap")
    server.dispatch = functools.partial(counted, dispatch)
    atexit.register(write_table)  # the server stops cleanly on SIGTERM, and then exits
    sys.argv[0] = "secantusd"
    sys.exit(importlib.import_module("secantus.cli").main())
