"""Starts the station: finds or starts its backend, paints the badge screen, then connects.

Nothing slow comes before the first frame: the keyring's key derivation, the embedded server
opening its plant and the HTTP client's imports all run in threads after it (KioskApp.connect).
One station per data directory: a second `kiosk` there is refused in one line, before it starts
anything (it would share the outbox, and its embedded server would re-enroll the station).
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kiosk import lifecycle, station_log
from kiosk.config import StationSettings

if TYPE_CHECKING:
    from kiosk.client.embedded import EmbeddedBackend

STATION_LOCK: Final = "station.lock"


@dataclass(frozen=True)
class Backend:
    """Where the station's server is, the token to use, and the embedded server if it is ours."""

    url: str
    token: str | None = field(repr=False)
    embedded: EmbeddedBackend | None = None


@dataclass(frozen=True)
class Starting:
    """A backend on its way: checked and launched, but not yet asked for its token or address."""

    settings: StationSettings
    embedded: EmbeddedBackend | None = None

    def finish(self) -> tuple[str, str | None]:
        """Blocking (a thread's job): the URL and token, once the embedded server answers or the
        keyring is unlocked (one Argon2 derivation for cryptfile: kiosk/client/credentials.py)."""
        from kiosk.client import tls

        # Refuses plain http to another machine and a missing or unreadable ca_file, before the
        # keyring is asked for the token (which must never cross the network in clear). Here, not
        # before the first frame: the trust it builds loads httpx and the CA bundle (~0.1 s).
        tls.use_for_station(self.settings)
        if self.embedded is not None:
            return self.embedded.wait_ready()
        from kiosk.client.credentials import load_token

        url = self.settings.server_url
        assert url is not None
        # "station not enrolled: run kiosk enroll…" when the keyring has no token for url.
        return url, load_token(url, backend=self.settings.keyring_backend)


@contextmanager
def starting_backend(settings: StationSettings) -> Iterator[Starting]:
    """The configured server, or the embedded one launched (and stopped after use)."""
    if settings.server_url is not None:
        yield Starting(settings)
        return
    from kiosk.client.embedded import EmbeddedBackend

    embedded = EmbeddedBackend(
        data_dir=settings.data_dir,
        database_url=settings.embedded_database_url,
        station_name=settings.station_name,
        work_center=settings.work_center,
    ).start()  # from the main thread: the child's parent-death signal follows this thread
    try:
        yield Starting(settings, embedded)
    finally:
        embedded.stop()


@contextmanager
def backend(settings: StationSettings) -> Iterator[Backend]:
    """The server ready to be asked: for tools with nothing to paint first (admin, outbox sync)."""
    with starting_backend(settings) as pending:
        url, token = pending.finish()
        yield Backend(url, token, pending.embedded)


class CannotStart(Exception):
    """The station cannot start here; the message says why in one line."""


class NoTerminal(CannotStart):
    """Standard input or output is not a terminal: the screen would be drawn into a file."""


class AlreadyRunning(CannotStart):
    """A station already runs on this data directory."""


def require_terminal(what: str = "the station") -> None:
    """Refuse to draw `what` anywhere but on a terminal (`kiosk </dev/null >file`)."""
    missing = _not_terminals()
    if missing:
        streams = " and ".join(missing)
        raise NoTerminal(
            f"{what} needs a terminal, but standard {streams} "
            f"{'is not one' if len(missing) == 1 else 'are not terminals'}: run it on a console, "
            "over ssh -t or in tmux (for scripts: kiosk outbox --json, kiosk export as-built)"
        )


def _not_terminals() -> list[str]:
    return [
        name
        for name, stream in (("input", sys.stdin), ("output", sys.stdout))
        if stream is None or not stream.isatty()
    ]


@contextmanager
def station_lock(data_dir: Path) -> Iterator[None]:
    """Held while the station runs; a second station on data_dir is refused, naming the first."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / STATION_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(
                f"a station is already running on {data_dir} (pid {pid}): open the admin "
                "console beside it with `kiosk admin`, or stop that station first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # drops the lock


def run_station(settings: StationSettings) -> int:
    """The station until it stops, by any means, within the shutdown deadline (kiosk/lifecycle.py)."""
    if settings.server_url is None:
        require_terminal()  # before starting an embedded server for nobody
    with station_lock(settings.data_dir), lifecycle.guard(settings.data_dir) as shutdown:
        # Textual takes over stderr while it runs: the station's own log lines go to a file.
        station_log.start(settings.data_dir)
        with starting_backend(settings) as pending:
            if _not_terminals():
                pending.finish()  # no screen to paint first: the backend's answer says more
            require_terminal()  # before a single escape sequence is written
            if pending.embedded is not None:
                shutdown.at_forced_exit(pending.embedded.kill)
            from kiosk.app import KioskApp
            from kiosk.collector import IdleCollector
            from kiosk.driver import StationDriver

            app = KioskApp(
                settings,
                settings.server_url or "",
                None,
                embedded=pending.embedded,
                connect=pending.finish,
                collector=IdleCollector(),
            )
            app.driver_class = StationDriver  # survives losing its terminal (kiosk/driver.py)
            shutdown.app = app
            app.run()
        code = app.return_code or 0
        shutdown.stopped(code)
    if app.start_error is not None:
        raise app.start_error  # `error: station not enrolled: …`, after the terminal is back
    return code
