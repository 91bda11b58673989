"""Every station screen as an SVG snapshot, at 80x24 and 120x40, in each station theme.

Each test drives the app against the real server to the screen it shows, then takes one screenshot
per theme inside the running test (`app.export_screenshot()` compared by syrupy, as harlequin does).
Deterministic by construction: the station clock is frozen (tests/station.py), cursors do not blink,
animations are off (tests/conftest.py), and no screen shown carries a server time.

Update after a deliberate change with `pytest tests/test_station_snapshots.py --snapshot-update`,
then look at the changed SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot

from kiosk import themes
from kiosk.app import KioskApp
from kiosk.screens.badge import BadgeScreen
from kiosk.screens.document import DocumentScreen
from kiosk.screens.ncr import NcrScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.refused import RefusedScreen
from kiosk.screens.scanner_test import ScannerTestScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from tests.conftest import LiveServer
from tests.station import burst, running, settle, work_on
from tests.station_helpers import enter_value, screen_text, sign_with, type_in

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

Drive = Callable[[Pilot[int]], Awaitable[None]]


async def shoot(
    live_server: LiveServer,
    tmp_path: Path,
    size: tuple[int, int],
    snapshot: SnapshotAssertion,
    drive: Drive,
    screen: type,
) -> None:
    """Drive the app to a screen, then compare one screenshot per theme."""
    svg = snapshot.use_extension(SVGImageExtension)
    async with running(live_server.url, live_server.token(), tmp_path, size=size) as pilot:
        app = pilot.app
        await drive(pilot)
        assert isinstance(app.screen, screen), f"expected {screen.__name__}, got {app.screen!r}"
        # Signature manifestations carry the server's time: a snapshot must never show one.
        assert " UTC" not in screen_text(app)
        mismatched = []
        for theme in themes.THEMES:
            app.theme = theme
            await settle(pilot)
            if svg(name=theme) != app.export_screenshot():
                mismatched.append(theme)
        assert not mismatched, f"screenshots differ for {mismatched} (see snapshot_report.html)"


async def nothing(_pilot: Pilot[int]) -> None:
    """The station as it starts: the badge screen."""


async def signed_in(pilot: Pilot[int]) -> None:
    await burst(pilot, "10001")


async def step_in_work(pilot: Pilot[int]) -> None:
    """TRV-1002 step 20.1 in work: wrench recorded, an in-tolerance torque typed, not entered."""
    await work_on(pilot, "TRV-1002")
    await burst(pilot, "TL-0001")
    await type_in(pilot, "12.5")
    await settle(pilot)


async def sign_off_prompt(pilot: Pilot[int]) -> None:
    """TRV-1001 step 10.1 with both items recorded, F5 pressed."""
    await work_on(pilot, "TRV-1001")
    await burst(pilot, "LOT-A100")
    await enter_value(pilot, "ack")
    await pilot.press("f5")
    await settle(pilot)


async def ncr_prompt(pilot: Pilot[int]) -> None:
    """An out-of-tolerance torque on TRV-1002 20.1: the NCR prompt opens by itself."""
    await work_on(pilot, "TRV-1002")
    await burst(pilot, "TL-0001")
    await enter_value(pilot, "15")


async def on_hold(pilot: Pilot[int]) -> None:
    await burst(pilot, "10001")
    await burst(pilot, "TRV-1003")


async def locked(pilot: Pilot[int]) -> None:
    """Ana walked away from TRV-1001 with a value typed: the idle lock covers it."""
    await work_on(pilot, "TRV-1001")
    await type_in(pilot, "LOT-A1")
    cast(KioskApp, pilot.app).lock_station()
    await settle(pilot)


async def refused_list(pilot: Pilot[int]) -> None:
    """F9 with nothing refused: the list says so."""
    await burst(pilot, "10001")
    await pilot.press("f9")
    await settle(pilot)


async def scanner_test(pilot: Pilot[int]) -> None:
    """Admin console (F11, Ada's badge and PIN), then the scanner test screen (F9)."""
    await burst(pilot, "90001")
    await pilot.press("f11")
    await settle(pilot)
    await sign_with(pilot, "90001", "9999")
    await pilot.press("f9")
    await settle(pilot)


async def drawing(pilot: Pilot[int]) -> None:
    """TRV-1001 step 10.1 in work, Ctrl+O: drawing DWG-8810-011 rev C drawn in the terminal."""
    await work_on(pilot, "TRV-1001")
    await pilot.press("ctrl+o")
    await settle(pilot)


SCREENS = [
    pytest.param(nothing, BadgeScreen, id="badge"),
    pytest.param(signed_in, QueueScreen, id="queue"),
    pytest.param(step_in_work, TravelerScreen, id="traveler_step_in_work"),
    pytest.param(sign_off_prompt, SignOffScreen, id="sign_off"),
    pytest.param(ncr_prompt, NcrScreen, id="ncr"),
    pytest.param(on_hold, TravelerScreen, id="hold_banner"),
    pytest.param(locked, BadgeScreen, id="locked"),
    pytest.param(refused_list, RefusedScreen, id="refused"),
    pytest.param(scanner_test, ScannerTestScreen, id="scanner_test"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("drive", "screen"), SCREENS)
async def test_screen(
    live_server: LiveServer,
    tmp_path: Path,
    size: tuple[int, int],
    snapshot: SnapshotAssertion,
    drive: Drive,
    screen: type,
) -> None:
    """Each station screen, driven there against the real server, in every theme."""
    await shoot(live_server, tmp_path, size, snapshot, drive, screen)


async def long_traveler(pilot: Pilot[int]) -> None:
    """TRV-2000 (200 steps) as scanned: its current operation listed, titles whole beside it."""
    await burst(pilot, "10001")
    await burst(pilot, "TRV-2000")


async def jumped_to_step(pilot: Pilot[int]) -> None:
    """TRV-2000, Ctrl+G and step 200.10 typed: operation 200 listed, the header follows."""
    await long_traveler(pilot)
    await pilot.press("ctrl+g")
    await settle(pilot)
    await type_in(pilot, "200.10")
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize(
    "drive",
    [pytest.param(long_traveler, id="long_traveler"), pytest.param(jumped_to_step, id="jump")],
)
async def test_long_traveler(
    live_server: LiveServer, tmp_path: Path, snapshot: SnapshotAssertion, drive: Drive
) -> None:
    """A 200-step traveler at the station's 80x24, as opened and after a jump to a step."""
    await shoot(live_server, tmp_path, (80, 24), snapshot, drive, TravelerScreen)


async def test_drawing(live_server: LiveServer, tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    """A step's drawing drawn in the terminal at the station's 80x24 (only there: every cell of
    a picture is its own element in the SVG, so each size would be a megabyte)."""
    await shoot(live_server, tmp_path, (80, 24), snapshot, drawing, DocumentScreen)
