"""The live board against the real server with several stations at work: who is where on what
and for how long, holds and NCRs with their age, refused actions, help requests answered from
the board; a hold placed at another station shows within 5 s (a long poll, not a reload); the
board opens for a supervisor or quality, at `kiosk board` and at a station (F11), never for an
operator; snapshots at 80x24 and 120x40."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import DataTable

from kiosk import __version__
from kiosk.board import BoardApp
from kiosk.client import ExecutionClient
from kiosk.screens.board import BoardScreen, age
from kiosk.server.service import ExecutionService
from kiosk.wire import Heartbeat, PlaceHold, RaiseAndon
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, station_ref, step_of
from tests.station import burst, running
from tests.station_helpers import type_in

SQLITE = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
"""The board reads what any store gives; the live tests run on SQLite."""

NOW = datetime.now(UTC).replace(hour=9, minute=30, second=0, microsecond=0) - timedelta(days=3)
"""Before the demo plant was seeded: the demo's own holds and NCRs are 0s old, whenever it was.
Three days back from today, as the demo's certifications are dated from today (a fixed day
would, ten days on, be the day Ben's torque certification expires)."""
STATIONS = ["ST-01", "ST-02", "ST-03", "ST-04", "ST-05"]


def beat(svc: ExecutionService, name: str, at: datetime, **changes: object) -> None:
    token = svc.local_station_token(name, "ASSEMBLY")
    body = {
        "app_version": __version__, "config_version": 1, "theme": "kiosk-dark", "terminal": "80x24",
        "color_system": "standard", "outbox_waiting": 0, "outbox_refused": 0, "uptime_seconds": 60.0,
    }  # fmt: skip
    svc.clock = lambda: at
    svc.heartbeat(svc.authenticate(token), Heartbeat.model_validate({**body, **changes}))


def floor_at(svc: ExecutionService, name: str) -> ServiceFloor:
    svc.local_station_token(name, "ASSEMBLY")
    return ServiceFloor(svc, station_ref(svc, name))


def busy_floor(svc: ExecutionService) -> str:
    """Five stations reporting (one silent, one holding a refused action); Ana on TRV-1001 step
    10.1 for 20 minutes, Ben joined her 5 minutes ago at another station, Ivy signed in at a
    third. Answers the token of the supervisor's office station."""
    for name in STATIONS[:4]:
        beat(svc, name, NOW - timedelta(seconds=30))
    beat(svc, "ST-05", NOW - timedelta(minutes=9))  # silent
    beat(svc, "ST-03", NOW - timedelta(seconds=10), outbox_refused=1,
         refused_actions=("#4 TRV-1001 start step by Ben Okafor: TRV-1001 is on hold",))  # fmt: skip
    svc.clock = lambda: NOW - timedelta(minutes=20)
    ana = floor_at(svc, "ST-01")
    ana.do(ana.start("ana", svc.traveler("TRV-1001"), "10.1"))
    svc.clock = lambda: NOW - timedelta(minutes=5)
    ben = floor_at(svc, "ST-02")
    ben.do(ben.start("ben", svc.traveler("TRV-1001"), "10.1"))
    svc.clock = lambda: NOW - timedelta(minutes=2)
    svc.login(station_ref(svc, "ST-03"), "20001")  # Ivy, signed in, on no step
    svc.clock = lambda: NOW
    return svc.local_station_token("SUPER-PC", "ASSEMBLY")


async def until(pilot: Pilot[int], done: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until `done()` holds (the board's follow worker never ends: no settle here)."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
        await pilot.pause(0.05)
    return time.monotonic() - start


def table_text(app: object, table_id: str) -> str:
    table = app.screen.query_one(f"#{table_id}", DataTable)  # type: ignore[attr-defined]
    return "\n".join(
        " | ".join(str(c) for c in table.get_row_at(n)) for n in range(table.row_count)
    )


def text_of(app: object, selector: str) -> str:
    return str(app.screen.query_one(selector).render())  # type: ignore[attr-defined]


async def open_board(pilot: Pilot[int], badge: str = "30001", pin: str = "3333") -> None:
    await pilot.pause(0.2)
    await pilot.press(*badge, "enter", *pin, "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, BoardScreen))
    await until(pilot, lambda: pilot.app.screen.board is not None)  # type: ignore[attr-defined]


def test_ages_read_at_a_glance() -> None:
    cases = [(59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00m"), (86399, "23h59m"),
             (86400, "1d0h"), (-5, "0s")]  # fmt: skip
    assert [age(timedelta(seconds=s)) for s, _ in cases] == [want for _, want in cases]


@SQLITE
async def test_the_board_follows_the_floor_live(live_server: LiveServer) -> None:
    svc = live_server.service
    app = BoardApp(ExecutionClient(live_server.url, busy_floor(svc)))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_board(pilot)
        floor = table_text(app, "floor")
        assert "ASSEMBLY | ST-01 | Ana Ortiz | TRV-1001 | 10.1 | 20m" in floor
        assert "ASSEMBLY | ST-02 | Ben Okafor | TRV-1001 | 10.1 | 5m" in floor
        assert "ASSEMBLY | ST-03 | Ivy Chen | - | - | 2m" in floor
        assert "ASSEMBLY | ST-05 | ✘ silent | - | - | -" in floor
        assert "ST-03 | #4 TRV-1001 start step by Ben Okafor" in table_text(app, "refused")
        assert "TRV-1003 | Awaiting engineering review" in table_text(app, "holds")
        heading = text_of(app, "#board-heading")
        assert "7 stations, 4 signed in, 2 on steps · 1 holds · 0 NCRs" in heading
        # The demo's certifications: Ben's torque expired 10 days ago, Ivy's NDT runs out in 20.
        # Days are counted on the server's clock, which this floor sets a few days back.
        ben, ivy = (datetime.now(UTC).date() + timedelta(days=d) for d in (-10, 20))
        left = (ivy - app.screen.board.generated_at.date()).days  # type: ignore[attr-defined]
        assert table_text(app, "certs").splitlines() == [
            f"Ben Okafor · torque · EXPIRED {ben}",
            f"Ivy Chen · NDT level 2 · expires {ivy} (in {left} days)",
        ]

        # A hold placed at another station: on the board within 5 s, with no key pressed.
        sam = floor_at(svc, "ST-04")
        sam.do(PlaceHold(actor_id=sam.ids["sam"], traveler="TRV-1002", reason="Gauge R&R due"))
        seconds = await until(pilot, lambda: "TRV-1002" in table_text(app, "holds"))
        assert seconds < 5
        assert "hold | TRV-1002 | Gauge R&R due | 0s" in table_text(app, "holds")

        # Ana calls for help; Sam acknowledges it from the board (F2).
        step = step_of(svc.traveler("TRV-1001"), "10.1")
        ana = floor_at(svc, "ST-01")
        ana.do(RaiseAndon(actor_id=ana.ids["ana"], traveler="TRV-1001", step_id=step.id,
                          andon="help", reason="Press guard stuck"))  # fmt: skip
        await until(pilot, lambda: "HELP" in table_text(app, "andon"))
        assert text_of(app, "#alerts") == "! 0 STOP · 1 HELP · 1 waiting for a supervisor"
        assert (
            "HELP | TRV-1001 | 10.1 | Press guard stuck | Ana Ortiz at ST-01 | 0s | ! waiting"
            in (table_text(app, "andon"))
        )
        await pilot.press("f2")
        await until(pilot, lambda: "seen by Sam Patel" in table_text(app, "andon"))
        assert "Sam Patel acknowledged the help request on step 10.1." in text_of(app, "#message")
        assert svc.traveler("TRV-1001").andon[0].acknowledged_by == "Sam Patel"


@SQLITE
async def test_an_operator_is_refused_the_board(live_server: LiveServer) -> None:
    app = BoardApp(ExecutionClient(live_server.url, busy_floor(live_server.service)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press(*"10001", "enter", *"1111", "enter")
        await until(
            pilot,
            lambda: "may not watch the board" in " ".join(
                str(s.render()) for s in app.screen.query("Static")
            ),
        )  # fmt: skip
        assert not isinstance(app.screen, BoardScreen)


@SQLITE
async def test_a_supervisor_opens_the_board_at_a_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = busy_floor(live_server.service)
    async with running(live_server.url, token, tmp_path, size=(80, 24)) as pilot:
        await burst(pilot, "30001")  # Sam badges in at the station
        await pilot.press("f11")
        await pilot.pause(0.2)
        await burst(pilot, "30001")
        await type_in(pilot, "3333")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, BoardScreen))
        await until(pilot, lambda: "Ana Ortiz" in table_text(pilot.app, "floor"))


@SQLITE
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_board_snapshot(
    live_server: LiveServer, snapshot: SnapshotAssertion, size: tuple[int, int]
) -> None:
    app = BoardApp(ExecutionClient(live_server.url, busy_floor(live_server.service)))
    async with app.run_test(size=size) as pilot:
        await open_board(pilot)
        await pilot.pause(0.2)
        # A DataTable widens its columns for new rows when idle: on a loaded machine the first
        # frames still have the empty table's widths ("SUPER-P").
        await until(pilot, lambda: "SUPER-PC" in app.export_screenshot())
        assert snapshot.use_extension(SVGImageExtension) == app.export_screenshot()
