"""The embedded backend: the reference server as a child process of a station, on loopback.

The station starts `kiosk serve --embedded`; this module then opens (and on first run seeds) the
demo plant, enrolls the local station, binds a free loopback port and tells the parent where it is
and which token to use on one line of stdout. It stops when the parent closes its stdin or is
gone altogether (SIGKILLed: the kernel sends SIGTERM, and the parent's pid is watched; see
kiosk/orphans.py), and leaves within GRACE seconds even if a request or a connection would hold
uvicorn's graceful shutdown: no station, dead or alive, leaves a server behind.

With a run file, the server first takes the lock beside it (one embedded server per data
directory) and, once it listens, records its URL, pid and token there for `kiosk admin` and the
other tools of that data directory (kiosk/client/embedded.py). A second server finding the lock
taken answers {"busy": true} and ends before it opens the plant: it never issues a new token for
the station, which would lock the running station out.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

from kiosk import orphans
from kiosk.server.app import ServerConfig, create_app, open_service

GRACE = 2.0
"""Seconds for uvicorn's graceful shutdown once the station is gone, before the process just ends."""
PARENT_POLL = 0.25


def serve_embedded(
    config: ServerConfig, station_name: str, work_center: str, run_file: Path | None = None
) -> None:
    # First thing: the station may die while the plant is still being opened or seeded.
    parent = orphans.expected_parent() or os.getppid()
    orphans.signal_on_parent_death(signal.SIGTERM)  # uvicorn stops gracefully on SIGTERM
    if not orphans.parent_alive(parent):
        return  # it died before the kernel was asked to tell us
    if run_file is not None and not _hold_lock(run_file.with_suffix(".lock")):
        _answer({"busy": True})
        return
    svc = open_service(config)
    token = svc.local_station_token(station_name, work_center)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc), log_level="warning", access_log=False, lifespan="on")
    )

    threading.Thread(
        target=_leave_with_parent, args=(server, parent, run_file), daemon=True
    ).start()
    url = f"http://127.0.0.1:{port}"
    if run_file is not None:
        _record(run_file, {"url": url, "token": token, "pid": os.getpid()})
    _answer({"url": url, "token": token})
    try:
        server.run(sockets=[sock])
    finally:
        _forget(run_file)


_held: list[int] = []
"""The lock's descriptor, open for the life of the process (the kernel drops the lock with it)."""


def _hold_lock(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def _record(run_file: Path, record: dict[str, object]) -> None:
    """Write the run file whole (rename) and readable by this user only: it holds a token."""
    tmp = run_file.with_name(f".{run_file.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record))
    os.replace(tmp, run_file)


def _forget(run_file: Path | None) -> None:
    if run_file is not None:
        run_file.unlink(missing_ok=True)  # a stale record is ignored anyway: its lock is free


def _answer(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _leave_with_parent(server: uvicorn.Server, parent: int, run_file: Path | None) -> None:
    """Stop when the station closes stdin or is gone; end the process if stopping takes too long."""
    closed = threading.Event()

    def read_until_closed() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=read_until_closed, daemon=True).start()
    while not closed.wait(PARENT_POLL) and orphans.parent_alive(parent):
        pass
    server.should_exit = True
    time.sleep(GRACE)
    _forget(run_file)
    os._exit(0)  # still here: a request or a held connection kept uvicorn from finishing
