"""Deviations at the station, under Pilot against the real reference server: quality approves one
by signature from the traveler screen (its key shown to quality alone), the step shows what each
deviation allows, and a value inside the widened limit is accepted under it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kiosk import rules
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.server import deviations
from kiosk.wire import RaiseDeviation
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, item_of, step_of
from tests.station import burst, running, settle
from tests.station_helpers import enter_value, message, sign_with, text_of

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def footer_keys(screen: TravelerScreen) -> set[str]:
    return {b.action for (_n, b, enabled, _t) in screen.active_bindings.values() if enabled}


async def test_quality_approves_a_deviation_and_a_value_inside_its_limit_is_accepted(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    ServiceFloor(service).work("ana", "TRV-1002", "20.1")
    last = service.clock().date() + timedelta(days=14)
    wider = RaiseDeviation(travelers=("TRV-1002",), steps=("20.2",), item="Mounting face flatness",
                           upper=0.1, units=1, until=last, reason="Face lapped after FX-12 fault")  # fmt: skip
    with service.store.begin() as conn:
        dev = deviations.raise_deviation(conn, wider, "Sam Patel", service.clock())
    async with running(live_server.url, live_server.token(), tmp_path, size=(120, 40)) as pilot:
        app = pilot.app
        await burst(pilot, "10001")  # Ana: an operator is not offered the approval
        await burst(pilot, "TRV-1002")
        screen = app.screen
        assert isinstance(screen, TravelerScreen)
        assert "approve_deviation" not in footer_keys(screen)
        shown = text_of(screen.query_one(".deviations"))
        assert "DEV-0001: upper limit 0.08 until" in shown
        assert f"{dev.number}: upper limit 0.1 until {last:%Y-%m-%d}, 1 unit (0 used) - " in shown
        assert "NOT APPROVED YET" in shown

        await burst(pilot, "30001")  # Sam (quality) takes over the station
        await settle(pilot)
        assert "approve_deviation" in footer_keys(screen)
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        await sign_with(pilot, "30001", "3333")
        assert f"{dev.number} approved by Sam Patel, in effect" in message(app)
        assert rules.find_deviation(service.traveler("TRV-1002"), dev.number).status == "approved"
        assert "NOT APPROVED YET" not in text_of(screen.query_one(".deviations"))

        await burst(pilot, "10001")  # Ana again: performs step 20.2
        await pilot.press("f2")
        await settle(pilot)
        await enter_value(pilot, "pass")
        await enter_value(pilot, "0.09")  # over 0.05, over DEV-0001's 0.08, within 0.1
        assert message(app).endswith(f"in tolerance (0–0.05 mm), under {dev.number}.")
        assert f"{dev.number}: upper limit 0.1 until {last:%Y-%m-%d}, 1 unit (1 used)" in text_of(
            screen.query_one(".deviations")
        )
    flat = item_of(step_of(service.traveler("TRV-1002"), "20.2"), "Mounting face flatness")
    assert flat.latest is not None
    assert (flat.latest.value, flat.latest.passed, flat.latest.deviation) == (
        "0.09",
        True,
        dev.number,
    )
