"""More helpers for driving the station in tests: what the screen says, signing, a stoppable server.

`tests/station.py` starts the app and feeds it keys; these read back what a person would see and
wrap the moves that every flow repeats (enter a value, sign with badge + PIN).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input

from kiosk.app import KioskApp
from kiosk.screens.admin_console import AdminConsoleScreen
from kiosk.screens.scanner_test import ScannerTestScreen
from kiosk.server.app import create_app
from kiosk.server.service import ExecutionService
from tests.conftest import free_port
from tests.station import burst, settle, typed


def screen_text(app: App[Any]) -> str:
    """The whole terminal as plain text, exactly as drawn (the same render as a screenshot)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


def text_of(widget: Widget) -> str:
    """What a Static-like widget shows, as plain text."""
    return str(widget.render())


def message(app: App[Any]) -> str:
    """The top screen's message line (`#message`), or a modal's error line (`#error`)."""
    found = app.screen.query("#message, #error")
    return text_of(found.first()) if found else ""


def focused_input(app: App[Any]) -> Input:
    focused = app.focused
    assert isinstance(focused, Input), f"focus is on {focused!r}, not on an input"
    return focused


async def type_in(pilot: Pilot[int], text: str) -> None:
    """A person types `text`; returns once the wedge detector has let every key through.

    Typed keys are held up to the detector's gap limit before they are replayed, on a timer
    that a busy test machine may run late: wait for it rather than for a fixed time.
    """
    await typed(pilot, text)
    app = pilot.app
    assert isinstance(app, KioskApp)
    for _ in range(100):
        if app.wedge.seconds_to_deadline() is None:
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def enter_value(pilot: Pilot[int], text: str) -> None:
    """A person types `text` into the focused field and presses Enter."""
    await type_in(pilot, text)
    await pilot.press("enter")
    await settle(pilot)


async def sign_with(pilot: Pilot[int], badge: str, pin: str) -> None:
    """In an open sign-off prompt: scan the badge (reader burst), type the PIN, press Enter."""
    await burst(pilot, badge)
    await type_in(pilot, pin)
    await pilot.press("enter")
    await settle(pilot)


@dataclass
class StoppableServer:
    """The real reference server on a loopback port that a test may stop and start again."""

    url: str
    service: ExecutionService
    port: int
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def token(self) -> str:
        from kiosk.server import demo

        return self.service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)

    def start(self) -> None:
        config = uvicorn.Config(
            create_app(self.service),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "test server did not stop"
        self._server = self._thread = None


async def open_scanner_test(pilot: Pilot[int]) -> ScannerTestScreen:
    """Ada (admin) badges in, opens the admin console (F11, badge and PIN), then F9."""
    await burst(pilot, "90001")
    await pilot.press("f11")
    await settle(pilot)
    await sign_with(pilot, "90001", "9999")
    assert isinstance(pilot.app.screen, AdminConsoleScreen)
    await pilot.press("f9")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ScannerTestScreen)
    return screen


@contextmanager
def stoppable_server(service: ExecutionService) -> Iterator[StoppableServer]:
    port = free_port()
    live = StoppableServer(f"http://127.0.0.1:{port}", service, port)
    live.start()
    try:
        yield live
    finally:
        live.stop()
