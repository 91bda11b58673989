"""The station's own log: what the station would otherwise lose while Textual holds stderr (the
outbox sender's failures, a thread's crash) lands in app.log in its data directory, rotated,
readable by its user alone, and without a badge, PIN or token in it."""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from kiosk import station_log
from kiosk.client import ExecutionClient
from kiosk.client.sender import Sender
from kiosk.client.station_db import open_outbox
from kiosk.wire import BadgeLogin, Credentials
from tests.conftest import LiveServer
from tests.helpers import ROOT, leaked_secrets, thin_client_home

KIOSK = str(Path(sys.executable).parent / "kiosk")
CSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]")


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[Path]:
    """station_log started for a data directory in tmp; this process's logging put back after."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, threading.excepthook
    data = tmp_path / "station"
    yield station_log.start(data)
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    threading.excepthook = hook
    logging.captureWarnings(False)


def _damage(database: Path) -> None:
    """A disk that returns garbage: the station's outbox file and its WAL index overwritten."""
    for path in database.parent.glob(database.name + "*"):
        path.write_bytes(b"\xff" * path.stat().st_size)


async def test_an_outbox_delivery_failure_is_in_app_log_with_its_traceback(
    logged: Path, live_server: LiveServer
) -> None:
    outbox = open_outbox(logged.parent)
    _damage(logged.parent / "station.db")
    async with ExecutionClient(live_server.url, live_server.token()) as client:
        sender = Sender(outbox, client)
        delivering = asyncio.create_task(sender.run())
        deadline = time.monotonic() + 10
        while "outbox delivery failed" not in logged.read_text():
            assert time.monotonic() < deadline, logged.read_text()
            await asyncio.sleep(0.05)
        delivering.cancel()

    text = logged.read_text()
    assert "ERROR kiosk.client.sender: outbox delivery failed\nTraceback" in text
    assert "sqlite3.DatabaseError: file is not a database" in text
    assert stat.S_IMODE(logged.stat().st_mode) == 0o600


def test_a_crashed_thread_is_in_app_log(logged: Path) -> None:
    def crash() -> None:
        raise RuntimeError("scanner reader lost its device")

    thread = threading.Thread(target=crash, name="scanner-reader")
    thread.start()
    thread.join()

    assert "ERROR kiosk: uncaught exception in scanner-reader" in logged.read_text()
    assert "RuntimeError: scanner reader lost its device" in logged.read_text()


def test_no_credential_survives_the_station_formatter(logged: Path) -> None:
    log = logging.getLogger("kiosk.client.api")
    token = "st-9f2c1e7d5b3a4c6e8f0a"
    try:
        Credentials.model_validate({"badge": "20001", "pin": 2222})
    except ValidationError as exc:
        log.exception("could not send a signature: %s", exc)
    headers = httpx.Request("POST", "http://plant/", headers={"Authorization": f"Bearer {token}"})
    log.warning("request headers: %s", dict(headers.headers))
    log.warning("sent %r with key %s", BadgeLogin(badge="10001"), "idempotency_key=k-77aa01bc")
    log.warning(
        "body %s", {"session": "ps-4411aa", "credentials": {"badge": "90001", "pin": "9999"}}
    )

    text = logged.read_text()
    assert text.count("[redacted]") >= 6
    assert leaked_secrets(text) == []
    assert [s for s in (token, "k-77aa01bc", "ps-4411aa") if s in text] == []


def test_app_log_rotates_instead_of_filling_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged: Path
) -> None:
    monkeypatch.setattr(station_log, "MAX_BYTES", 2_000)
    for handler in logging.getLogger().handlers:
        if getattr(handler, "baseFilename", None) == str(logged):
            handler.maxBytes = station_log.MAX_BYTES  # type: ignore[attr-defined]
    for n in range(400):
        logging.getLogger("kiosk").warning("heartbeat %d not answered", n)

    kept = sorted(p.name for p in logged.parent.glob("app.log*"))
    assert kept == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    assert sum(p.stat().st_size for p in logged.parent.glob("app.log*")) < 5 * 2_000


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_real_station_starts_its_log_before_its_first_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kiosk` on a terminal: app.log exists, private, and says the station started, while
    station.log beside it stays the lifecycle's record of stops."""
    thin_client_home(tmp_path, monkeypatch)
    data = tmp_path / "data"
    env = {**os.environ, "TERM": "xterm-256color", "KIOSK_CONFIG_FILE": str(tmp_path / "none")}
    master, slave = pty.openpty()
    station = subprocess.Popen(
        [KIOSK], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
    )
    os.close(slave)
    screen = bytearray()
    drained = threading.Thread(target=_drain, args=(master, screen), daemon=True)
    drained.start()
    app_log = data / station_log.LOG_NAME
    try:
        deadline = time.monotonic() + 90
        # Logging starts before the backend: app.log is there before the first screen is.
        while "Scan your badge" not in CSI.sub("", screen.decode(errors="replace")):
            assert station.poll() is None and time.monotonic() < deadline, "no badge screen"
            time.sleep(0.1)
        assert "station starting" in app_log.read_text()
        station.send_signal(signal.SIGTERM)
        assert station.wait(30) == 0
    finally:
        if station.poll() is None:
            station.kill()
            station.wait(10)
        os.close(master)

    assert stat.S_IMODE(app_log.stat().st_mode) == 0o600
    assert f"pid {station.pid}" in app_log.read_text()
    assert "SIGTERM" in (data / "station.log").read_text()
    assert leaked_secrets(app_log.read_text()) == []


def _drain(master: int, screen: bytearray) -> None:
    """Read what the station draws, as a terminal would, so its writes never block."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        screen.extend(data)
