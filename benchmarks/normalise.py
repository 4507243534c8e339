"""How fast the pure vendor sources normalise payloads: one line per source, fixtures from tests/fixtures.

    .venv/bin/python benchmarks/normalise.py [--seconds 1.0]

Figures are per core (single-threaded) and include JSON parsing and event validation, i.e. all the CPU work ingest
does per record besides Kafka and MongoDB I/O.
"""

import argparse
import time
from pathlib import Path

from services.ingest.domain.config import NormalisationConfig
from services.ingest.domain.outcome import Accepted, RawIncident
from services.ingest.sources import NORMALISERS

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def accepted_payloads(source: str) -> list[RawIncident]:
    config = NormalisationConfig()
    found = []
    for path in sorted((FIXTURES / source).glob("*.json")):
        raw = RawIncident(path.read_bytes(), {"source": source, "received-at": "2026-11-28T09:00:00+00:00"})
        if isinstance(NORMALISERS[source](raw, config), Accepted):
            found.append(raw)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent per source")
    args = parser.parse_args()
    config = NormalisationConfig()
    print(f"{'source':<15} {'payloads':>8} {'records/s':>10} {'us/record':>10} {'mean bytes':>10}")
    for source, normalise in NORMALISERS.items():
        payloads = accepted_payloads(source)
        if not payloads:
            print(f"{source:<15} {'-':>8}  no accepted fixture")
            continue
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            for raw in payloads:
                normalise(raw, config)
            count += len(payloads)
        elapsed = time.perf_counter() - started
        size = sum(len(raw.body) for raw in payloads) / len(payloads)
        print(
            f"{source:<15} {len(payloads):>8} {count / elapsed:>10,.0f} {elapsed / count * 1e6:>10.1f} {size:>10,.0f}"
        )


if __name__ == "__main__":
    main()
