"""Admin work at the station itself: the admin console by badge, the scanner test screen with
learning and saving, and a supervisor resolving refused actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import RichLog

from kiosk.screens.refused import RefusedScreen
from kiosk.screens.scanner_test import ScannerTestScreen
from kiosk.wire import PlaceHold, RecordValue
from tests.conftest import LiveServer
from tests.helpers import step_of
from tests.station import burst, running, settle
from tests.station_helpers import message, open_scanner_test, sign_with

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)




def log_text(screen: ScannerTestScreen) -> str:
    return "\n".join(line.text for line in screen.query_one(RichLog).lines)


async def test_scanner_test_shows_keys_gaps_and_what_the_detector_decided(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 30)) as pilot:
        screen = await open_scanner_test(pilot)
        await burst(pilot, "]C10109506000134352\x1d10ABC123", gap=0.003)
        shown = log_text(screen)
        assert "<0x1D>" in shown  # the GS separator, made visible
        assert "ms" in shown
        assert "SCAN ended by enter: symbology GS1-128 · material ABC123" in shown
        assert "(01) 09506000134352" in shown and "(10) ABC123" in shown
        await burst(pilot, "10001")
        badge_part = log_text(screen).split("(10) ABC123")[1]
        assert "badge •••01" in badge_part  # never the whole badge number
        key_lines = [
            line.split(" ms ")[1].split()[0] for line in badge_part.splitlines() if " ms " in line
        ]
        assert key_lines == ["•", "•", "•", "0", "1", "<CR>"]  # masked but the last 2, with gaps


async def test_scanner_test_learns_framing_and_saves_it_to_the_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 30)) as pilot:
        await open_scanner_test(pilot)
        await pilot.press("f5")
        for code in ("TRV-1001", "TL-0001", "LOT-A100"):
            await burst(pilot, f"\x02{code}#", gap=0.006)
        assert "Learned: prefix '\\x02', suffix '#'" in message(pilot.app)
        await pilot.press("f2")
        await settle(pilot)
        assert "Saved to DEMO-01 as config v2" in message(pilot.app)
    info = live_server.service.station_info(live_server.service.authenticate(live_server.token()))
    assert (info.config.scanner.prefix, info.config.scanner.suffix) == ("\x02", "#")
    assert info.config_version >= 2


async def test_a_supervisor_dismisses_or_redoes_a_refused_action(
    live_server: LiveServer, tmp_path: Path
) -> None:
    svc = live_server.service
    token = live_server.token()  # one token: issuing another would un-enroll the running station
    async with running(live_server.url, token, tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1002")
        await pilot.press("f2")
        await settle(pilot)
        # Two values go into the outbox while Sam holds the traveler meanwhile, elsewhere.
        office = svc.authenticate(svc.local_station_token("OFFICE-01", "ASSEMBLY"))
        sam = svc.login(office, "30001")
        # The wrench of step 20.1, the step the screen shows (it holds that operation's steps).
        wrench = step_of(app.screen.traveler, "20.1").items[0]  # type: ignore[attr-defined]
        svc.perform(
            office,
            "hold-meanwhile",
            PlaceHold(
                actor_id=sam.person.id,
                session=sam.session,
                traveler="TRV-1002",
                reason="Gauge recall",
            ),
        )
        ana = app.session
        assert ana is not None
        for value in ("TL-0001", "TL-0003"):
            action = RecordValue(
                actor_id=ana.person.id,
                traveler="TRV-1002",
                item_id=wrench.id,
                value=value,
                session=ana.token,
            )
            app.link.outbox.record(action, ana.person)
        app.link.sender.nudge()
        for _ in range(20):
            await settle(pilot)
            if len(app.link.refused()) == 2:
                break
        app.refresh_status()
        assert "2 refused (F9)" in str(app.screen.query_one("StatusBar").render())
        await pilot.press("f9")
        await settle(pilot)
        assert isinstance(app.screen, RefusedScreen)
        await pilot.press("f8")  # dismiss the first: an operator's badge is not enough
        await settle(pilot)
        await sign_with(pilot, "10001", "1111")
        assert "may not resolve a refused action" in message(app)
        await pilot.press("f8")
        await settle(pilot)
        await sign_with(pilot, "30001", "3333")
        assert "dismissed by Sam Patel" in message(app)
        assert [e.state for e in app.link.outbox.entries() if e.kind == "record_value"] == [
            "dismissed",
            "refused",
        ]


async def test_heartbeat_reports_the_station_and_picks_up_a_new_central_config(
    live_server: LiveServer, tmp_path: Path
) -> None:
    from kiosk.wire import Credentials, StationConfig

    svc = live_server.service
    token = live_server.token()
    async with running(live_server.url, token, tmp_path, size=(80, 24)) as pilot:
        app = pilot.app
        app.send_heartbeat()
        await settle(pilot)
        station = svc.authenticate(token)
        admin = svc.admin_session(station, Credentials(badge="90001", pin="9999")).token
        (status,) = [s for s in svc.overview(station, admin).stations if s.name == "DEMO-01"]
        beat = status.heartbeat
        assert beat is not None and not status.silent and status.drift == ()
        assert (beat.terminal, beat.theme, beat.outbox_waiting, beat.config_version) == (
            "80x24",
            "kiosk-dark",
            0,
            1,
        )
        assert beat.color_system  # what Rich detected on this terminal

        # The plant switches this station to the console theme: the next beat brings it over.
        svc.set_station_config(station, admin, "DEMO-01", StationConfig(theme="kiosk-console"))
        app.send_heartbeat()
        await settle(pilot)
        assert app.theme == "kiosk-console"
        assert app.info is not None and app.info.config_version == 2
        assert "cfg v2" in str(app.screen.query_one("StatusBar").render())


async def test_a_revoked_station_says_station_not_enrolled(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = live_server.token()
    live_server.service.revoke_station("DEMO-01")
    async with running(live_server.url, token, tmp_path) as pilot:
        assert "Station not enrolled" in message(pilot.app)
        await burst(pilot, "10001")
        assert pilot.app.person is None
        assert "Station not enrolled" in message(pilot.app)
