"""The gate that holds keys behind a scan: they go once the screen acted on it, or late if the
screen never gets to it, never lost and in their order."""

from __future__ import annotations

import asyncio
import time

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input

from kiosk.scan_gate import LONGEST_HOLD, ScanGate


class Gated(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.gate = ScanGate(self, self.handle)
        self.handled: list[tuple[str, float]] = []

    def compose(self) -> ComposeResult:
        yield Input(id="field")

    async def handle(self, event: events.Key | events.Paste) -> None:
        assert isinstance(event, events.Key)
        self.handled.append((event.key, time.monotonic()))


def key(name: str) -> events.Key:
    return events.Key(name, name)


async def test_keys_wait_for_the_screen_then_go_in_order() -> None:
    app = Gated()
    async with app.run_test() as pilot:
        app.gate.close_behind(app.screen)
        assert app.gate.closed
        for name in "abc":
            app.gate.hold(key(name))
        await pilot.pause()
        await pilot.pause()
        assert not app.gate.closed and [k for k, _ in app.handled] == ["a", "b", "c"]


async def test_keys_behind_a_scan_a_stuck_screen_never_reaches_go_after_the_longest_hold() -> None:
    app = Gated()
    async with app.run_test():

        async def hang() -> None:
            await asyncio.sleep(3 * LONGEST_HOLD)

        app.screen.call_later(hang)  # a handler of the screen's that hangs
        started = time.monotonic()
        app.gate.close_behind(app.screen)
        app.gate.hold(key("x"))
        # Not pilot.pause: it waits for the screen's queue, which is what hangs.
        await asyncio.sleep(LONGEST_HOLD / 2)
        assert app.gate.closed and app.handled == []
        await asyncio.sleep(LONGEST_HOLD)
        assert [k for k, _ in app.handled] == ["x"]
        assert app.handled[0][1] - started >= LONGEST_HOLD
