"""The admin console against the real server, with several stations reporting heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import DataTable

from kiosk import __version__
from kiosk.admin import AdminApp
from kiosk.client import ExecutionClient
from kiosk.screens.admin_console import AdminConsoleScreen
from kiosk.server.service import ExecutionService
from kiosk.wire import Credentials, Heartbeat
from tests.conftest import LiveServer
from tests.station import settle

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def report(svc: ExecutionService, name: str, at: datetime, **changes: object) -> None:
    token = svc.local_station_token(name, "ASSEMBLY")
    beat = {
        "app_version": __version__, "config_version": 1, "theme": "kiosk-dark", "terminal": "80x24",
        "color_system": "standard", "outbox_waiting": 0, "outbox_refused": 0, "uptime_seconds": 60.0,
    }  # fmt: skip
    svc.clock = lambda: at
    svc.heartbeat(svc.authenticate(token), Heartbeat.model_validate({**beat, **changes}))


def plant_with_stations(live_server: LiveServer) -> str:
    svc = live_server.service
    report(svc, "ST-01", NOW - timedelta(seconds=20))
    report(
        svc,
        "ST-02",
        NOW - timedelta(seconds=10),
        app_version="0.0.9",
        outbox_waiting=12,
        outbox_refused=2,
        refused_actions=(
            "#7 TRV-1001 record value by Ben Okafor: TRV-1001 is on hold",
            "#9 TRV-1001 start step by Ben Okafor: TRV-1001 is on hold",
        ),
    )
    report(svc, "ST-03", NOW - timedelta(minutes=9))  # silent
    svc.clock = lambda: NOW
    return svc.local_station_token("ADMIN-PC", "ASSEMBLY")


async def sign_in(pilot: Pilot[int], badge: str = "90001", pin: str = "9999") -> None:
    await settle(pilot)
    await pilot.press(*badge, "enter", *pin, "enter")
    await settle(pilot)


def table_text(app: AdminApp, table_id: str) -> str:
    table = app.screen.query_one(f"#{table_id}", DataTable)
    return "\n".join(
        " | ".join(str(c) for c in table.get_row_at(n)) for n in range(table.row_count)
    )


async def test_console_flags_drifted_and_silent_stations(live_server: LiveServer) -> None:
    token = plant_with_stations(live_server)
    app = AdminApp(ExecutionClient(live_server.url, token))
    async with app.run_test(size=(120, 40)) as pilot:
        await sign_in(pilot)
        assert isinstance(app.screen, AdminConsoleScreen)
        stations = table_text(app, "stations")
        assert "ST-01 | ASSEMBLY | ✔ ok" in stations
        assert f"ST-02 | ASSEMBLY | ! DRIFT: app 0.0.9 (plant {__version__})" in stations
        assert "ST-03 | ASSEMBLY | ✘ SILENT" in stations
        assert "TRV-1003 | Awaiting engineering review of drawing change ECN-2291" in table_text(
            app, "holds"
        )
        refused = table_text(app, "refused")
        assert "ST-02 | #7 TRV-1001 record value by Ben Okafor: TRV-1001 is on hold" in refused
        assert "ST-02 | #9 TRV-1001 start step by Ben Okafor: TRV-1001 is on hold" in refused


async def test_only_an_admin_opens_the_console(live_server: LiveServer) -> None:
    token = plant_with_stations(live_server)
    app = AdminApp(ExecutionClient(live_server.url, token))
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "30001", "3333")  # a supervisor
        assert not isinstance(app.screen, AdminConsoleScreen)
        assert "may not open the admin console" in str(
            app.screen.query_one("#error").render()
        ) or any("may not open" in str(s.render()) for s in app.screen.query("Static"))


async def test_an_admin_unlocks_a_locked_out_person(live_server: LiveServer) -> None:
    token = plant_with_stations(live_server)
    svc = live_server.service
    station = svc.authenticate(token)
    for _ in range(5):
        with pytest.raises(Exception, match="Badge or PIN not accepted|locked"):
            svc.verify_credentials(station, Credentials(badge="10002", pin="0000"))
    app = AdminApp(ExecutionClient(live_server.url, token))
    async with app.run_test(size=(120, 40)) as pilot:
        await sign_in(pilot)
        assert "Ben Okafor" in table_text(app, "people")
        security = table_text(app, "security")  # the lock-out is a security event too
        assert "! lock-out" in security and "Ben Okafor: 5 wrong PINs" in security
        await pilot.press("f6")
        await sign_in(pilot)  # the admin signs the unlock
        assert "Ben Okafor unlocked" in str(app.screen.query_one("#message").render())
    assert (
        svc.verify_credentials(station, Credentials(badge="10002", pin="1212")).name == "Ben Okafor"
    )


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_console_snapshot(
    live_server: LiveServer, snapshot: SnapshotAssertion, size: tuple[int, int]
) -> None:
    token = plant_with_stations(live_server)
    app = AdminApp(ExecutionClient(live_server.url, token))
    async with app.run_test(size=size) as pilot:
        await sign_in(pilot)
        assert isinstance(app.screen, AdminConsoleScreen)
        assert snapshot.use_extension(SVGImageExtension) == app.export_screenshot()
