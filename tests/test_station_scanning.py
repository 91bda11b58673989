"""Scanner bursts reaching the running station: badge-in, traveler, tools, user switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from kiosk.screens.badge import BadgeScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.traveler import TravelerScreen
from tests.conftest import LiveServer
from tests.station import burst, running, settle, typed

# UI behaviour does not depend on the database; the server tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


async def test_badge_burst_signs_in_and_never_lands_in_the_input(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        assert isinstance(app.screen, BadgeScreen)
        await burst(pilot, "10001")
        assert isinstance(app.screen, QueueScreen)
        assert app.person is not None and app.person.name == "Ana Ortiz"


async def test_traveler_burst_opens_it_and_leaves_the_focused_input_empty(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        queue = pilot.app.screen
        field = queue.query_one("#traveler-number", Input)
        field.focus()
        await typed(pilot, "ab")  # a person starts typing, then scans
        await burst(pilot, "TRV-1001")
        assert isinstance(pilot.app.screen, TravelerScreen)
        assert pilot.app.screen.traveler.number == "TRV-1001"
        assert field.value == "ab"  # the person's keys stayed, the scan did not leak in


async def test_human_typing_is_not_a_scan(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        field = pilot.app.screen.query_one("#traveler-number", Input)
        field.focus()
        await typed(pilot, "TRV-1002")
        assert field.value == "TRV-1002"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, TravelerScreen)
        assert pilot.app.screen.traveler.number == "TRV-1002"


async def test_badge_burst_switches_the_user(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1001")
        assert isinstance(pilot.app.screen, TravelerScreen)
        await burst(pilot, "10002")
        assert pilot.app.person is not None and pilot.app.person.name == "Ben Okafor"
        assert isinstance(pilot.app.screen, QueueScreen)  # Ana's traveler screen is closed
        assert not any(isinstance(s, TravelerScreen) for s in pilot.app.screen_stack)


async def test_tool_scans_fill_the_step_and_an_expired_tool_is_refused(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1002")  # steps 10.x done: 20.1 needs a torque wrench
        screen = pilot.app.screen
        assert isinstance(screen, TravelerScreen)
        await pilot.press("f2")
        await settle(pilot)
        await burst(pilot, "TL-0002")
        message = str(screen.query_one("#message").render())
        assert "out of calibration" in message and "TL-0002" in message
        await burst(pilot, "TL-0001")
        step = screen.step
        assert step is not None
        wrench = next(i for i in step.items if i.label == "Torque wrench")
        assert wrench.latest is not None and wrench.latest.value == "TL-0001"


async def test_unknown_scan_says_what_was_read_and_why(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "XYZ-99-QQ")
        message = str(pilot.app.screen.query_one("#message").render())
        assert "Scan not accepted" in message
        assert isinstance(pilot.app.screen, QueueScreen)
