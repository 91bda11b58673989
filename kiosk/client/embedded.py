"""Starts the embedded reference server as a child process and learns its address and token.

The server runs in its own process, never on the station's event loop: a slow query cannot freeze
a screen, and the station process does not pay the server's import time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread

from kiosk.client.errors import BackendUnreachable

START_TIMEOUT = 60.0


@dataclass
class EmbeddedBackend:
    data_dir: Path
    database_url: str
    station_name: str
    work_center: str
    url: str = ""
    token: str = field(default="", repr=False)
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def start(self) -> EmbeddedBackend:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "embedded-server.log", "a")  # noqa: SIM115 - lives with the child
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kiosk",
                "serve",
                "--embedded",
                "--demo",
                "--database-url",
                self.database_url,
                "--secret-file",
                str(self.data_dir / "plant-secret"),
                "--station-name",
                self.station_name,
                "--work-center",
                self.work_center,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        line = self._read_ready_line()
        ready = json.loads(line)
        self.url, self.token = ready["url"], ready["token"]
        return self

    def _read_ready_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        result: list[str] = []
        reader = Thread(target=lambda: result.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        if not result or not result[0].strip():
            self.stop()
            raise BackendUnreachable(
                f"The embedded server did not start; see {self.data_dir / 'embedded-server.log'}."
            )
        return result[0]

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def restart(self) -> tuple[str, str]:
        """Start the server again after it died: (new URL, new station token)."""
        self.stop()
        self.start()
        return self.url, self.token

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
