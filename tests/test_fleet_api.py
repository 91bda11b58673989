"""The fleet through the API: heartbeats, drift and silence, admin sessions, central config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kiosk import __version__
from kiosk.client import ExecutionClient, Refused
from kiosk.server.app import ServerConfig, open_service
from kiosk.wire import Credentials, Heartbeat, ScannerConfig, StationConfig
from tests.conftest import LiveServer, Plant

ADA = Credentials(badge="90001", pin="9999")


def beat(**changes: object) -> Heartbeat:
    base = {
        "app_version": __version__,
        "config_version": 1,
        "theme": "kiosk-dark",
        "terminal": "80x24",
        "color_system": "standard",
        "outbox_waiting": 0,
        "outbox_refused": 0,
        "uptime_seconds": 12.0,
    }
    return Heartbeat.model_validate({**base, **changes})


async def test_overview_shows_drifted_and_silent_stations(
    live_server: LiveServer, plant: Plant
) -> None:
    svc = live_server.service
    tokens = {name: svc.local_station_token(name, "ASSEMBLY") for name in ("ST-A", "ST-B", "ST-C")}
    async with ExecutionClient(live_server.url, tokens["ST-A"]) as a:
        await a.heartbeat(beat())
    async with ExecutionClient(live_server.url, tokens["ST-B"]) as b:
        await b.heartbeat(beat(app_version="0.0.9", theme="kiosk-high-contrast", outbox_waiting=7))
    # ST-C reported long ago: a server whose clock is three minutes ahead sees it as silent.
    async with ExecutionClient(live_server.url, tokens["ST-C"]) as c:
        await c.heartbeat(beat())
    later = open_service(ServerConfig(plant.database_url, plant.secret_file))
    later.clock = lambda: datetime.now(UTC) + timedelta(minutes=3)

    async with ExecutionClient(live_server.url, tokens["ST-A"]) as admin:
        session = await admin.admin_session(ADA)
        overview = await admin.overview(session.token)
    by_name = {s.name: s for s in overview.stations}
    assert by_name["ST-A"].drift == () and not by_name["ST-A"].silent
    assert by_name["ST-B"].drift == (
        f"app 0.0.9 (plant {__version__})",
        "theme kiosk-high-contrast (plant kiosk-dark)",
    )
    assert by_name["ST-B"].heartbeat is not None and by_name["ST-B"].heartbeat.outbox_waiting == 7
    assert by_name["DEMO-01"].silent  # never reported
    assert [h.traveler for h in overview.holds] == ["TRV-1003"]
    station = later.authenticate(tokens["ST-A"])
    admin_token = later.admin_session(station, ADA).token
    assert all(s.silent for s in later.overview(station, admin_token).stations)


async def test_admin_routes_refuse_without_an_admin_session(client: ExecutionClient) -> None:
    with pytest.raises(Refused, match="Admin badge and PIN"):
        await client.overview("not-a-session")
    with pytest.raises(Refused, match="may not open the admin console"):
        await client.admin_session(Credentials(badge="30001", pin="3333"))  # a supervisor


async def test_central_config_change_reaches_the_station(client: ExecutionClient) -> None:
    info = await client.station()
    assert (
        await client.heartbeat(beat(config_version=info.config_version))
    ).config_version == info.config_version
    session = await client.admin_session(ADA)
    config = StationConfig(
        theme="kiosk-console", idle_lock_seconds=60, scanner=ScannerConfig(suffix="#")
    )
    version = await client.set_station_config(session.token, info.name, config)
    assert version == info.config_version + 1
    assert (
        await client.heartbeat(beat(config_version=info.config_version))
    ).config_version == version
    fresh = await client.station()
    assert fresh.config == config and fresh.config_version == version
