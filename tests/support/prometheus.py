"""A real Prometheus (Debian's ``/usr/bin/prometheus``) with known history, on a loopback port, for the tests.

History is written as OpenMetrics text with timestamps and backfilled with ``promtool tsdb create-blocks-from
openmetrics`` before the server starts, so a test can ask about the last hours without waiting for scrapes. The
server scrapes nothing: what it knows is exactly what the test wrote.
"""

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import start_until_ready, terminate

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MINIMAL_CONFIG = "global:\n  scrape_interval: 15s\n"


@dataclass(frozen=True)
class Series:
    """One gauge series and its samples, in time order."""

    name: str
    labels: dict[str, str]
    points: tuple[tuple[datetime, float], ...]


def every(start: datetime, end: datetime, step: timedelta, value: float) -> list[tuple[datetime, float]]:
    """``value`` every ``step`` from ``start`` to ``end`` inclusive."""
    points = []
    moment = start
    while moment <= end:
        points.append((moment, value))
        moment += step
    return points


def openmetrics(series: Iterable[Series]) -> str:
    """OpenMetrics text: each family's samples together, a ``# TYPE`` line first, ``# EOF`` at the end."""
    by_name: dict[str, list[Series]] = {}
    for one in series:
        by_name.setdefault(one.name, []).append(one)
    lines = []
    for name, family in by_name.items():
        lines.append(f"# TYPE {name} gauge")
        for one in family:
            labels = ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(one.labels.items()))
            selector = f"{name}{{{labels}}}" if labels else name
            lines.extend(f"{selector} {value!r} {moment.timestamp():.3f}" for moment, value in one.points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class PrometheusServer:
    """One Prometheus process over ``data_dir``; ``stop`` and ``start`` again keep its port and its history."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def backfill(self, series: Iterable[Series]) -> None:
        source = self.data_dir.parent / f"{self.data_dir.name}.om"
        source.write_text(openmetrics(series), encoding="utf-8")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data_dir)],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 30.0) -> None:
        config = self.data_dir.parent / f"{self.data_dir.name}.yml"
        config.write_text(MINIMAL_CONFIG, encoding="utf-8")
        self.process = start_until_ready(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
            ],
            self.data_dir.parent / f"{self.data_dir.name}.log",
            f"{self.url}/-/ready",
            timeout,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None
