"""Keys typed right behind a scan wait until the screen has acted on that scan.

A scan reaches its screen as a message, and what the screen does with it (a badge scanned
into the signature prompt moves the focus to the PIN) comes back through the app's queue. Keys
already queued behind the scan would otherwise reach the widget focused *before* it: a PIN's
first digit typed while a busy station was still reading the badge landed in the badge field
and the signature failed. So, from the moment a scan is routed, keys are held; a callback
queued on the screen behind the scan (which queues one on the app behind whatever the screen's
handler queued there) lets them go, in their order, through the app's normal key handling.

A screen stuck in a handler, or closed before it reached the callback, would keep them; so
they also go after `LONGEST_HOLD` seconds: late, never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual import events
from textual.app import App
from textual.screen import Screen

LONGEST_HOLD = 0.5
"""Seconds keys wait at most for a screen to act on a scan."""

Handle = Callable[[events.Key | events.Paste], Awaitable[None]]
"""The app's own key handling (its wedge), which the released keys go through again."""


class ScanGate:
    def __init__(self, app: App[Any], handle: Handle) -> None:
        self._app = app
        self._handle = handle
        self._held: list[events.Key | events.Paste] | None = None
        self._opened = 0
        """Which hold is current: a late fallback of an earlier hold must not end a new one."""
        self._fallback: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        """Keys wait now (a routed scan is not yet acted on)."""
        return self._held is not None

    def hold(self, event: events.Key | events.Paste) -> None:
        assert self._held is not None
        self._held.append(event)

    def close_behind(self, screen: Screen[Any]) -> None:
        """A scan was just posted to `screen`: hold keys until its handler has run."""
        if self._held is None:
            self._held = []
        self._opened += 1
        hold = self._opened
        screen.call_later(self._app.call_later, self._open, hold)
        if self._fallback is not None:
            self._fallback.cancel()
        self._fallback = asyncio.get_running_loop().call_later(
            LONGEST_HOLD, self._app.call_later, self._open, hold
        )

    def cancel(self) -> None:
        if self._fallback is not None:
            self._fallback.cancel()

    async def _open(self, hold: int) -> None:
        if hold != self._opened or self._held is None:
            return  # an earlier scan's callback: a later scan holds the keys now
        self.cancel()
        held, self._held = self._held, None
        for at, event in enumerate(held):
            if self._held is not None:  # a released key completed another scan: wait again
                self._held.extend(held[at:])
                return
            await self._handle(event)
