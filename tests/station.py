"""Helpers for driving the station app in tests: a running app against the live server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import cast

from textual import events
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from kiosk.app import KioskApp
from kiosk.collector import IdleCollector
from kiosk.config import StationSettings

FROZEN = datetime(2026, 11, 26, 9, 30).astimezone()


def make_app(
    url: str, token: str, data_dir: Path, *, collector: IdleCollector | None = None
) -> KioskApp:
    settings = StationSettings(data_dir=data_dir)
    return KioskApp(settings, url, token, clock=lambda: FROZEN, collector=collector)


async def settle(pilot: Pilot[int]) -> None:
    """Wait until the app's workers are done and every screen has drawn."""
    app = pilot.app
    for _ in range(3):
        await pilot.pause()
        # An exclusive worker replaced by a newer one (a health check on its timer while the
        # test starts another) ends cancelled: that is not a failure of what is being waited for.
        with contextlib.suppress(WorkerCancelled):
            await app.workers.wait_for_complete()
    await pilot.pause()


async def burst(pilot: Pilot[int], text: str, *, gap: float = 0.004, end: str = "enter") -> None:
    """Keys as a keyboard-wedge reader sends them: `gap` seconds apart, then the terminator."""
    start = time.monotonic()
    keys = [(ch, ch) for ch in text] + [(end, "\r" if end == "enter" else "\t")]
    for n, (key, char) in enumerate(keys):
        event = events.Key(key, char)
        event.time = start + n * gap
        pilot.app.post_message(event)
    await pilot.pause(0.1)
    await settle(pilot)


async def typed(pilot: Pilot[int], text: str, *, gap: float = 0.12) -> None:
    """A person typing: keys `gap` seconds apart."""
    for ch in text:
        event = events.Key(ch, ch)
        event.time = time.monotonic()
        pilot.app.post_message(event)
        await pilot.pause(gap)


class StationPilot(Pilot[int]):
    """A Pilot whose app is typed as the station (KioskApp) for the tests that drive it."""

    @property
    def app(self) -> KioskApp:
        return cast(KioskApp, super().app)


@asynccontextmanager
async def running(
    url: str, token: str, data_dir: Path, size: tuple[int, int] = (80, 24)
) -> AsyncIterator[StationPilot]:
    app = make_app(url, token, data_dir)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        yield cast(StationPilot, pilot)


async def work_on(pilot: Pilot[int], traveler: str, badge: str = "10001") -> None:
    """Badge in (Ana by default), open `traveler` by scan and start its current step (F2)."""
    await burst(pilot, badge)
    await burst(pilot, traveler)
    await pilot.press("f2")
    await settle(pilot)
