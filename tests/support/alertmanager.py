"""A real Alertmanager (Debian's ``/usr/bin/prometheus-alertmanager``) on a loopback port, for the tests.

It routes to a receiver that notifies nobody and runs without clustering. Tests give it alerts the way Prometheus
does (``POST /api/v2/alerts``), so what its API answers is exactly what the test sent.
"""

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.processes import start_until_ready, terminate

ALERTMANAGER = (
    shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"
)
NOBODY = "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n"


@dataclass
class AlertmanagerServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "alertmanager.yml"
        config.write_text(NOBODY, encoding="utf-8")
        self.process = start_until_ready(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={self.data_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ],
            self.data_dir / "alertmanager.log",
            f"{self.url}/-/ready",
            timeout,
        )

    def fire(self, labels: Mapping[str, str], starts_at: datetime) -> None:
        """An alert firing since ``starts_at``, sent as Prometheus sends it (unresolved for the resolve_timeout)."""
        alert = {"labels": dict(labels), "startsAt": starts_at.isoformat()}
        httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=5.0).raise_for_status()

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None
