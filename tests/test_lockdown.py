"""The station cannot be left: no quit, suspend or palette key anywhere; only an admin can exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from kiosk.app import KioskApp
from kiosk.screens.badge import BadgeScreen
from kiosk.screens.ncr import NcrScreen
from kiosk.screens.prompt import ChoiceScreen, PromptScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from tests.conftest import LiveServer
from tests.station import burst, running, settle
from tests.station_helpers import message, sign_with, type_in

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)

LOCKDOWN_KEYS = ("ctrl+q", "ctrl+c", "ctrl+z", "ctrl+p", "ctrl+backslash")
FORBIDDEN_ACTIONS = {"quit", "help_quit", "suspend_process", "command_palette"}


def action_name(action: str) -> str:
    """`app.quit()` and `quit` name the same action."""
    name = action.split("(", 1)[0].strip()
    return name.removeprefix("app.")


def escape_bindings(app: KioskApp) -> list[str]:
    """Active bindings, with every focusable widget of the screen focused in turn, that would
    quit, suspend or open the command palette."""
    screen = app.screen
    found: list[str] = []
    for widget in [None, *screen.focus_chain]:
        if widget is not None:
            widget.focus()
        for key, active in screen.active_bindings.items():
            if action_name(active.binding.action) in FORBIDDEN_ACTIONS:
                found.append(f"{type(screen).__name__}: {key} -> {active.binding.action}")
    return found


async def press_lockdown_keys(pilot: Pilot[int]) -> None:
    app = pilot.app
    screen = app.screen
    for key in LOCKDOWN_KEYS:
        await pilot.press(key)
        await settle(pilot)
        assert app.is_running, f"{key} stopped the station"
        assert app.return_code is None, f"{key} set a return code"
        assert app.screen is screen, f"{key} changed the screen to {app.screen!r}"


async def test_no_screen_binds_quit_suspend_or_palette(
    live_server: LiveServer, tmp_path: Path
) -> None:
    assert KioskApp.ENABLE_COMMAND_PALETTE is False
    keys = {b.key for b in KioskApp.BINDINGS if not isinstance(b, tuple)}
    # The admin exit and console (behind an admin's badge + PIN) and the refused-actions list.
    assert keys == {"f9", "f11", "f12"}
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        seen: list[str] = []
        found: list[str] = []

        async def audit(expected: type) -> None:
            await settle(pilot)
            assert isinstance(app.screen, expected), f"expected {expected.__name__}: {app.screen!r}"
            seen.append(type(app.screen).__name__)
            found.extend(escape_bindings(app))

        await audit(BadgeScreen)
        await pilot.press("f12")
        await audit(SignOffScreen)
        await pilot.press("escape")
        await settle(pilot)  # gone before the next badge, or the prompt would take the scan
        await burst(pilot, "10001")
        await audit(QueueScreen)
        await burst(pilot, "TRV-1002")
        await pilot.press("f2")
        await audit(TravelerScreen)  # with the step's inputs enabled
        await burst(pilot, "TL-0001")
        await type_in(pilot, "15")
        await pilot.press("enter")
        await audit(NcrScreen)
        await pilot.press("escape")
        await settle(pilot)
        app.lock_station()
        await audit(BadgeScreen)
        await burst(pilot, "30001")  # Sam may place holds
        await burst(pilot, "TRV-1001")
        await pilot.press("f7")
        await audit(PromptScreen)
        await pilot.press("escape")
        await settle(pilot)
        app.push_screen(ChoiceScreen("Choose", "One of them", [("a", "A"), ("b", "B")]))
        await audit(ChoiceScreen)

        assert seen == [
            "BadgeScreen",
            "SignOffScreen",
            "QueueScreen",
            "TravelerScreen",
            "NcrScreen",
            "BadgeScreen",
            "PromptScreen",
            "ChoiceScreen",
        ]
        assert found == []


async def test_lockdown_keys_do_nothing_on_any_screen(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await press_lockdown_keys(pilot)  # badge screen, badge input focused
        await burst(pilot, "10001")
        await press_lockdown_keys(pilot)  # queue, table focused
        app.screen.query_one("#traveler-number", Input).focus()
        await press_lockdown_keys(pilot)  # queue, typing a traveler number
        await burst(pilot, "TRV-1001")
        await pilot.press("f2")
        await settle(pilot)
        await type_in(pilot, "LOT")
        await press_lockdown_keys(pilot)  # traveler, a value being typed
        assert isinstance(app.focused, Input) and app.focused.value == "LOT"
        await pilot.press("f12")
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        await press_lockdown_keys(pilot)  # a modal prompt
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TravelerScreen)


async def test_admin_exit_refuses_an_operator(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await pilot.press("f12")
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        await sign_with(pilot, "10001", "1111")
        assert "Ana Ortiz is not an admin; the station stays open." in message(app)
        assert app.is_running and app.return_code is None
        # The prompt stays open for another badge; Esc puts the station back as it was.
        assert isinstance(app.screen, SignOffScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, BadgeScreen)


async def test_admin_exit_refuses_an_admin_badge_with_a_wrong_pin(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await pilot.press("f12")
        await settle(pilot)
        await sign_with(pilot, "90001", "9990")
        assert "Badge or PIN not accepted." in message(app)
        assert app.is_running and app.return_code is None


async def test_admin_exit_with_admin_badge_and_pin_closes_the_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")  # works from anywhere, even with an operator signed in
        await pilot.press("f12")
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        await burst(pilot, "90001")
        await type_in(pilot, "9999")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert app.return_code == 0
        assert not app.is_running
