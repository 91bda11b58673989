"""Starts the embedded reference server as a child process and learns its address and token.

The server runs in its own process, never on the station's event loop: a slow query cannot freeze
a screen, and the station process does not pay the server's import time. It never outlives the
station: it stops when its stdin closes, when its parent process is gone (even after a SIGKILL:
see kiosk/orphans.py), and a station leaving within its shutdown deadline stops it first.

One embedded server per data directory: while it runs it holds a lock there and records its URL,
pid and station token (RUN_FILE, readable by its user only, beside the plant secret). A second
process on the same data directory (`kiosk admin`, `kiosk outbox sync`) uses that server rather
than starting its own, whose enrollment of the station would replace the token the running
station holds ("Station not enrolled" on every badge).

start() only launches the child: the station paints its badge screen while the server opens the
plant, and wait_ready() (in a thread) then learns where it listens.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import Final

from kiosk.client.errors import BackendUnreachable
from kiosk.orphans import child_environment

START_TIMEOUT = 60.0
STOP_TIMEOUT = 3.0
"""Seconds the server gets to stop after its stdin closes, then it is killed: well inside the
station's own shutdown deadline (kiosk/lifecycle.py)."""
RUN_FILE: Final = "embedded-server.json"
LOCK_FILE: Final = "embedded-server.lock"


@dataclass(frozen=True)
class Running:
    """An embedded server some process on this machine runs for a data directory."""

    url: str
    token: str = field(repr=False)
    pid: int


def running_server(data_dir: Path) -> Running | None:
    """The server recorded in data_dir, if it still holds its lock (else the record is stale)."""
    if not lock_held(data_dir / LOCK_FILE):
        return None
    try:
        record = json.loads((data_dir / RUN_FILE).read_text())
        return Running(str(record["url"]), str(record["token"]), int(record["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # locked, but not listening yet (or the record is being written)


def lock_held(path: Path) -> bool:
    """Whether another process holds the flock on path (taking it for a moment to find out)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


@dataclass
class EmbeddedBackend:
    data_dir: Path
    database_url: str
    station_name: str
    work_center: str
    url: str = ""
    token: str = field(default="", repr=False)
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _borrowed: Running | None = field(default=None, repr=False)
    """The server of another process on this data directory, used instead of starting one."""

    def start(self) -> EmbeddedBackend:
        """Use the server running for this data directory, or launch one without waiting for it."""
        if self._borrow():
            return self
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
                "--run-file",
                str(self.data_dir / RUN_FILE),
                "--station-name",
                self.station_name,
                "--work-center",
                self.work_center,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**child_environment(os.environ, os.getpid()), "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    def wait_ready(self) -> tuple[str, str]:
        """Blocking (run it in a thread): the server's URL and station token once it listens."""
        if self.url:
            return self.url, self.token
        ready = json.loads(self._read_ready_line())
        if ready.get("busy"):
            # Another process started this data directory's server first: use that one.
            self.stop()
            if not self._borrow(wait=START_TIMEOUT):
                raise self._did_not_start()
        else:
            self.url, self.token = ready["url"], ready["token"]
        return self.url, self.token

    def _borrow(self, wait: float = 0.0) -> bool:
        deadline = time.monotonic() + wait
        while (running := running_server(self.data_dir)) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        self._borrowed, self.url, self.token = running, running.url, running.token
        return True

    def _read_ready_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        result: list[str] = []
        reader = Thread(target=lambda: result.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        if not result or not result[0].strip():
            self.stop()
            raise self._did_not_start()
        return result[0]

    def _did_not_start(self) -> BackendUnreachable:
        return BackendUnreachable(
            f"The embedded server did not start; see {self.data_dir / 'embedded-server.log'}."
        )

    @property
    def owned(self) -> bool:
        """Whether this process started the server (and so stops it), rather than borrowing it."""
        return self._borrowed is None

    @property
    def alive(self) -> bool:
        if self._borrowed is not None:
            return lock_held(self.data_dir / LOCK_FILE)
        return self._process is not None and self._process.poll() is None

    def restart(self) -> tuple[str, str]:
        """Start the server again after it died: (new URL, new station token)."""
        self.stop()
        self.url = self.token = ""
        self.start()
        return self.wait_ready()

    def stop(self) -> None:
        self._borrowed = None  # a borrowed server is its owner's to stop
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        if not self.url and process.poll() is None:
            # Still opening its plant (the station stops while it starts): it does not read its
            # stdin yet, and has served nobody. SQLite's commits are atomic: end it now.
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """At once, without waiting: the station is being forced out (kiosk/lifecycle.py)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
