"""How a station ends: every way of stopping it ends the process within a deadline.

SIGTERM (`systemctl stop`), SIGHUP (a dropped SSH session, a killed tmux pane), the loss of the
terminal and the admin exit all begin the same shutdown: the app is asked to exit, which restores
the terminal, closes the outbox (consistent after every commit anyway) and stops the embedded
server. A thread armed when the station starts then waits DEADLINE seconds; if the process is still
there, whatever Textual is stuck in, it logs why with every thread's stack, kills the embedded
server, puts the terminal back as it found it and leaves with os._exit(FORCED_EXIT). Under
Restart=always a process that ends is a station that comes back; one that hangs never does.

Nothing here imports Textual: the station's start-up pays only for a few threads.
"""

from __future__ import annotations

import asyncio
import faulthandler
import itertools
import os
import select
import signal
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol

from kiosk import watchdog

DEADLINE: Final = 5.0
"""Seconds from the start of a shutdown to the forced exit; systemd's stop timeout is far longer."""
FORCED_EXIT: Final = 124
"""Exit code of a forced exit (as timeout(1) uses it): the orderly shutdown did not finish in time."""
LOG_NAME: Final = "station.log"
"""In the station's data directory: why and when the station stopped, and stacks if it was forced."""
LOG_LIMIT: Final = 1_000_000
"""Bytes of station.log kept before it moves to station.log.1: a restart loop cannot fill the disk."""
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

# What Textual switches on, switched off: kitty keyboard, alternate screen, hidden cursor, focus
# and mouse reports, bracketed paste. Written raw when the orderly shutdown could not do it.
_RESET: Final = (
    b"\x1b[<u\x1b[?1049l\x1b[?25h\x1b[?1004l\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?2004l"
)
_RESTORE_WAIT: Final = 1.0
"""A terminal that takes no output must not hold the forced exit: give up on it after this long."""


class Exitable(Protocol):
    """The app, as far as shutting down goes (Textual's App.exit, asked with no arguments)."""

    def exit(self) -> None: ...


class SavedTerminal:
    """The terminal's settings before Textual changed them, to put back on a forced exit."""

    def __init__(self, in_fd: int = 0, out_fd: int = 2) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self.attrs: list[Any] | None = None
        with suppress(termios.error, OSError):
            self.attrs = termios.tcgetattr(in_fd) if os.isatty(in_fd) else None

    def restore(self) -> None:
        if self.attrs is None:
            return
        with suppress(termios.error, OSError):
            termios.tcsetattr(self.in_fd, termios.TCSANOW, self.attrs)
        with suppress(OSError):
            os.write(self.out_fd, _RESET)


class Shutdown:
    """One per station process. Whatever ends the station first calls begin(); later calls only
    add nothing. Safe to call from a signal handler: no lock is taken on the way."""

    def __init__(
        self,
        *,
        deadline: float = DEADLINE,
        log_file: Path | None = None,
        terminal: SavedTerminal | None = None,
    ) -> None:
        self.deadline = deadline
        self.log_file = log_file
        self.terminal = terminal or SavedTerminal()
        self.reason: str | None = None
        self.begun = threading.Event()
        self.app: Exitable | None = None
        self._began_at = 0.0
        # next() on a count is atomic under the GIL: a signal arriving in the middle of begin()
        # cannot start a second shutdown, and no lock means no deadlock with the interrupted code.
        self._claims = itertools.count()
        self._last_resorts: list[Callable[[], None]] = []
        self._before: dict[signal.Signals, Any] = {}

    # --- arming -----------------------------------------------------------------------------------

    def arm(self) -> None:
        """Start the deadline thread and the terminal watch; take SIGTERM, SIGHUP and SIGINT.

        The thread is started now, not when a signal comes: starting a thread from a signal
        handler could wait on a lock the interrupted main thread holds."""
        threading.Thread(target=self._deadline, name="kiosk-shutdown-deadline", daemon=True).start()
        if self.terminal.attrs is not None:
            threading.Thread(
                target=self._watch_terminal, name="kiosk-terminal-watch", daemon=True
            ).start()
        self._before = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}

    def disarm(self) -> None:
        """Give the signals back: the station has returned, and a late signal may end us plainly.
        The deadline stays armed: it also bounds the interpreter's own exit."""
        for sig, handler in self._before.items():
            signal.signal(sig, handler)

    def at_forced_exit(self, cleanup: Callable[[], None]) -> None:
        """Run cleanup (quick, non-blocking: kill a child) before a forced exit."""
        self._last_resorts.append(cleanup)

    # --- beginning --------------------------------------------------------------------------------

    def begin(self, reason: str) -> None:
        if next(self._claims):
            return
        self.reason = reason
        self._began_at = time.monotonic()
        self.begun.set()

    def terminal_lost(self, reason: str) -> None:
        """From any thread: the terminal is gone (hangup, EIO); stop as a SIGHUP would."""
        self.begin(reason)
        # A hangup the kernel sends only to the terminal's session leader; this process may not
        # be it (started by a wrapper). The main thread takes it, so its wait is interrupted now.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGHUP)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.begin(signal.Signals(signum).name)
        if self.app is None:  # still starting: unwind; the backend context stops the server
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # as without us: `kiosk` says 130
            raise SystemExit(0)
        self._ask_app_to_exit(self.app)

    @staticmethod
    def _ask_app_to_exit(app: Exitable) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # The loop is not running (yet, or any more): App.exit before run() skips application
            # mode altogether, and after it returned is a no-op; the deadline covers the rest.
            app.exit()
            return
        # We interrupted whatever the loop was doing: hand the exit to the loop, not into it.
        loop.call_soon_threadsafe(app.exit)

    def stopped(self, return_code: int) -> None:
        """The orderly shutdown finished: say so in the log, with how long it took."""
        took = time.monotonic() - self._began_at if self.begun.is_set() else 0.0
        self._log(f"stopped after {took:.1f} s ({self.reason}), return code {return_code}")

    # --- the deadline -----------------------------------------------------------------------------

    def _deadline(self) -> None:
        self.begun.wait()
        self._log(f"stopping: {self.reason}")
        watchdog.notify("STOPPING=1")
        left = self.deadline - (time.monotonic() - self._began_at)
        time.sleep(max(0.0, left))
        self._force()

    def _force(self) -> None:
        """Past the deadline: log, stop the server, restore the terminal, leave."""
        line = (
            f"forced exit {FORCED_EXIT}: the shutdown after {self.reason} did not finish "
            f"within {self.deadline:g} s"
        )
        self._log(line, stacks=True)
        for cleanup in self._last_resorts:
            with suppress(Exception):
                cleanup()
        restorer = threading.Thread(target=self._restore_and_say, args=(line,), daemon=True)
        restorer.start()
        restorer.join(_RESTORE_WAIT)
        os._exit(FORCED_EXIT)

    def _restore_and_say(self, line: str) -> None:
        self.terminal.restore()
        with suppress(OSError):
            os.write(2, f"kiosk: {line}\n".encode())  # the journal under systemd

    def _watch_terminal(self) -> None:
        # POLLHUP and POLLERR come without asking for input: the keys stay Textual's to read.
        poller = select.poll()
        poller.register(self.terminal.in_fd, select.POLLHUP | select.POLLERR)
        while True:
            for _fd, mask in poller.poll():
                if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self.terminal_lost("terminal hung up")
                    return

    def _log(self, line: str, *, stacks: bool = False) -> None:
        if self.log_file is None:
            return
        with suppress(OSError):
            if self.log_file.stat().st_size > LOG_LIMIT:
                os.replace(self.log_file, self.log_file.with_name(self.log_file.name + ".1"))
        with suppress(OSError), open(self.log_file, "a") as log:
            log.write(
                f"{datetime.now().astimezone():%Y-%m-%dT%H:%M:%S%z} pid {os.getpid()}: {line}\n"
            )
            if stacks:
                log.flush()
                faulthandler.dump_traceback(file=log, all_threads=True)


_current: Shutdown | None = None


def current() -> Shutdown | None:
    """The running station's shutdown, or None (an app run by tests, a tool)."""
    return _current


def begin(reason: str) -> None:
    """Start the deadline, if a station is running here."""
    if _current is not None:
        _current.begin(reason)


def terminal_lost(reason: str) -> None:
    if _current is not None:
        _current.terminal_lost(reason)


@contextmanager
def guard(data_dir: Path, *, deadline: float = DEADLINE) -> Iterator[Shutdown]:
    """The station's whole life: from before its backend starts to the interpreter's exit."""
    global _current
    data_dir.mkdir(parents=True, exist_ok=True)
    shutdown = Shutdown(deadline=deadline, log_file=data_dir / LOG_NAME)
    shutdown.arm()
    watchdog.dump_stacks_when_killed()
    _current = shutdown
    try:
        yield shutdown
    finally:
        # Also bounds what follows: stopping the server, the interpreter joining its threads.
        # Only once the app ran: a station that never started (no token, say) returns to its
        # caller, which may go on (`kiosk` called in-process by a test or a tool).
        if shutdown.app is not None or shutdown.begun.is_set():
            shutdown.begin("the station returned")
        else:
            _current = None  # it never started: nothing later may set its deadline going
        shutdown.disarm()
