"""``python -m services.ingest check --source SOURCE FILE``: what a tool's payload becomes, before wiring it up.

Prints one ``IncidentClosed`` JSON object per line and exits 0; or ``ignored: <why>`` and exits 1; or
``invalid: <why>`` and exits 2.
"""

import argparse
import sys
from pathlib import Path

from schemas import SOURCES
from services.ingest.domain.outcome import Accepted, Ignored, RawIncident
from services.ingest.settings import IngestSettings
from services.ingest.sources import normalise

EXIT_ACCEPTED, EXIT_IGNORED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.ingest check", description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, choices=SOURCES)
    parser.add_argument("file", type=Path, help="the payload as the tool sends it ('-' for standard input)")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="a transport header, repeatable"
    )
    args = parser.parse_args(argv)
    body = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    headers = {"source": args.source}
    for item in args.header:
        name, _, value = item.partition("=")
        headers[name.strip().lower()] = value
    outcome = normalise(RawIncident(body=body, headers=headers), IngestSettings().normalisation())
    if isinstance(outcome, Accepted):
        for incident in outcome.incidents:
            print(incident.model_dump_json())
        return EXIT_ACCEPTED
    if isinstance(outcome, Ignored):
        print(f"ignored: {outcome.reason}")
        return EXIT_IGNORED
    print(f"invalid: {outcome.reason}")
    return EXIT_INVALID
