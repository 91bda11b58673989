"""The signing period, as an operator meets it (21 CFR 11.200): the idle lock and a sign-out close
an open signature and forget its PIN, so a badge alone never completes one; wrong offline PINs
count across a restart; a refused signature is listed under the person who tried to sign."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from kiosk.screens.badge import BadgeScreen
from kiosk.screens.refused import RefusedScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.server.service import ExecutionService
from kiosk.wire import PlaceHold, StepStatus
from tests.conftest import LiveServer
from tests.helpers import step_of
from tests.station import StationPilot, burst, running, settle
from tests.station_helpers import enter_value, message, sign_with, stoppable_server, type_in

# What is under test is the station's: its signing period and its offline checks. The server's
# refusals it meets are the rules', tested on both stores (tests/test_signatures.py).
pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


async def ready_to_sign(pilot: StationPilot, badge: str = "10001") -> TravelerScreen:
    """Step 10.1 of TRV-1001 started, its lot scanned and kit acknowledged; the prompt open."""
    await burst(pilot, badge)
    await burst(pilot, "TRV-1001")
    screen = pilot.app.screen
    assert isinstance(screen, TravelerScreen)
    await pilot.press("f2")
    await settle(pilot)
    await burst(pilot, "LOT-A100")
    await enter_value(pilot, "ack")
    await pilot.press("f5")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SignOffScreen)
    return screen


def signed(service: ExecutionService) -> bool:
    return step_of(service.traveler("TRV-1001"), "10.1").status is StepStatus.COMPLETE


async def test_the_idle_lock_closes_an_open_signature_and_forgets_its_pin(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        screen = await ready_to_sign(pilot)
        prompt = app.screen
        await burst(pilot, "10001")  # the badge scanned into the prompt
        await type_in(pilot, "1111")  # the PIN typed, not yet entered
        assert prompt.query_one("#pin", Input).value == "1111"

        app.lock_station()
        await settle(pilot)
        assert isinstance(app.screen, BadgeScreen)
        assert not any(isinstance(s, SignOffScreen) for s in app.screen_stack)
        assert all(field.value == "" for field in prompt.query(Input))

        await burst(pilot, "10001")  # Ana is back: where she was, but the signature is gone
        assert app.screen_stack[-1] is screen
        await pilot.press("enter")
        await settle(pilot)
        assert not signed(live_server.service)
        await pilot.press("f5")  # signing again asks for both components
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        assert all(field.value == "" for field in app.screen.query(Input))
        await sign_with(pilot, "10001", "1111")
        assert signed(live_server.service)


async def test_signing_out_closes_an_open_signature(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await ready_to_sign(pilot)
        await burst(pilot, "10001")
        await type_in(pilot, "1111")
        await app.action_sign_out()
        await settle(pilot)
        assert isinstance(app.screen, BadgeScreen) and app.person is None
        assert not any(isinstance(s, SignOffScreen) for s in app.screen_stack)
        assert not signed(live_server.service)


@pytest.mark.slow  # two station lives, each waiting out its offline checks
async def test_wrong_offline_pins_are_still_counted_after_a_restart(
    service: ExecutionService, tmp_path: Path
) -> None:
    with stoppable_server(service) as server:
        token = server.token()
        async with running(server.url, token, tmp_path) as pilot:
            await ready_to_sign(pilot)  # online: the station holds Ana's cache entry now
            server.stop()
            for _ in range(3):
                await sign_with(pilot, "10001", "0000")
                assert message(pilot.app) == (
                    "✘ Badge or PIN not accepted. Repeated wrong PINs lock the badge."
                )
        assert pilot.app.link.online is False

        async with running(server.url, token, tmp_path) as pilot:  # the station restarted
            app = pilot.app
            await burst(pilot, "10001")  # identified from the cache
            await burst(pilot, "TRV-1001")  # the cached traveler, with what waits on it
            await pilot.press("f5")
            await settle(pilot)
            await sign_with(pilot, "10001", "0000")
            assert "Badge or PIN not accepted" in message(app)
            await sign_with(pilot, "10001", "0000")  # the fifth, across the restart
            assert message(app) == (
                "✘ This badge is locked after repeated wrong PINs; a supervisor must unlock it."
            )
            await sign_with(pilot, "10001", "1111")  # the right PIN no longer helps
            assert "locked" in message(app)


async def test_a_refused_signature_is_listed_under_the_person_who_tried_it(
    service: ExecutionService, tmp_path: Path
) -> None:
    """Ben works the step; Ana signs it while the station is cut off; meanwhile Sam holds the
    traveler from the office. The server refuses the signature: F9 lists it as Ana's, not Ben's."""
    office = service.authenticate(service.local_station_token("OFFICE-01", "ASSEMBLY"))
    with stoppable_server(service) as server:
        async with running(server.url, server.token(), tmp_path) as pilot:
            app = pilot.app
            await burst(pilot, "10001")  # Ana has badged in here: she is in the station's cache
            await ready_to_sign(pilot, badge="10002")
            server.stop()
            await sign_with(pilot, "10001", "1111")
            assert "sent when the server is back" in message(app)
            sam = service.login(office, "30001")
            hold = PlaceHold(actor_id=sam.person.id, session=sam.session, traveler="TRV-1001",
                             reason="Gauge recall")  # fmt: skip
            assert service.perform(office, "office-hold", hold)[0] == 200
            server.start()
            for _ in range(100):
                app.link.sender.nudge()
                await pilot.pause(0.1)
                if app.link.refused():
                    break
            await pilot.press("f9")
            await settle(pilot)
            assert isinstance(app.screen, RefusedScreen)
            table = app.screen.query_one(DataTable)
            (row,) = [table.get_row_at(n) for n in range(table.row_count)]
            assert row[2] == "sign step" and row[3] == "Ana Ortiz"
            assert "on hold" in str(row[5])
