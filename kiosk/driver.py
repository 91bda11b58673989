"""Textual's Linux driver, made safe for a terminal that can vanish under the station.

Two things went wrong when a station's terminal went away (tmux pane killed, SSH session dropped):
- On a hangup the kernel sends SIGHUP *and* SIGCONT. Textual's SIGCONT handler resumes application
  mode: a second writer thread replaces the first, dies on its first write (EIO), and the shutdown
  then waits forever to queue output for it (MainThread in WriterThread.stop → Queue.put, the old
  writer in Queue.get). A station never suspends (its keys cannot), so SIGCONT and SIGTSTP get
  their plain meaning back.
- A write to a hung-up terminal raises EIO and kills the writer thread, after which every write
  blocks once its queue is full. Here output to a lost terminal is dropped and the loss reported.
The shutdown deadline (kiosk/lifecycle.py) starts when application mode ends, whatever ended it.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, Final, TextIO

from textual.drivers.linux_driver import LinuxDriver

from kiosk import lifecycle

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from textual.app import App

HANG_ON_SHUTDOWN_ENV: Final = "KIOSK_TEST_HANG_ON_SHUTDOWN"
"""Test hook only: once the shutdown has begun, terminal output blocks forever, as a terminal that
takes no more output would; tests use it to show the deadline still ends the process."""


class TerminalOutput(io.RawIOBase):
    """The bytes under Textual's output: to the terminal, or dropped once it is gone."""

    def __init__(self, fd: int, *, hang_on_shutdown: bool = False) -> None:
        super().__init__()
        self._fd = fd
        self._lost = False
        self._hang_on_shutdown = hang_on_shutdown

    @classmethod
    def text(cls, file: TextIO, *, hang_on_shutdown: bool = False) -> io.TextIOWrapper:
        """A text stream like file (same fd, encoding and error policy) that never raises."""
        raw = cls(file.fileno(), hang_on_shutdown=hang_on_shutdown)
        errors = getattr(file, "errors", None) or "strict"
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding=file.encoding, errors=errors)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: ReadableBuffer, /) -> int:
        size = len(memoryview(data))
        self._maybe_hang()
        if self._lost:
            return size
        try:
            return os.write(self._fd, data)
        except OSError as exc:  # EIO on a hung-up tty, ENXIO, EPIPE
            self._lost = True
            lifecycle.terminal_lost(f"terminal write failed: {exc.strerror or exc}")
            return size

    def _maybe_hang(self) -> None:
        shutdown = lifecycle.current()
        if self._hang_on_shutdown and shutdown is not None and shutdown.begun.is_set():
            threading.Event().wait()


class StationDriver(LinuxDriver):
    """LinuxDriver without suspend/resume, with output that survives the terminal's loss."""

    def __init__(
        self,
        app: App[Any],
        *,
        debug: bool = False,
        mouse: bool = True,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(app, debug=debug, mouse=mouse, size=size)
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        if self._file is not None:
            hang = os.environ.get(HANG_ON_SHUTDOWN_ENV) == "1"
            self._file = TerminalOutput.text(self._file, hang_on_shutdown=hang)

    @property
    def can_suspend(self) -> bool:
        return False  # a station never hands its terminal over: application mode ends only once

    def stop_application_mode(self) -> None:
        lifecycle.begin("the app closed")  # exit, admin exit or crash: the deadline runs from here
        super().stop_application_mode()
