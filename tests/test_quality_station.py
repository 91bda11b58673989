"""Quality at the station, under Pilot against the real reference server: a scrap ends the
traveler on screen and in the queue, a wrong serial or another part's lot is refused with the
reason, `12.70` stays 12.70 from the keyboard to the as-built PDF, and an expired certification
refuses the start naming the person and the date."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kiosk.screens.ncr import DispositionScreen
from kiosk.screens.prompt import ChoiceScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.server import pdf, printable
from kiosk.wire import Meaning, StepStatus, TravelerStatus
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, item_of, pdf_text, snapshot, step_of
from tests.station import burst, running, settle, work_on
from tests.station_helpers import enter_value, message, screen_text, sign_with, text_of, type_in
from tests.test_quality_rules import torque_ncr

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def traveler_screen(pilot_app: object) -> TravelerScreen:
    screen = getattr(pilot_app, "screen", None)
    assert isinstance(screen, TravelerScreen), f"expected the traveler screen, got {screen!r}"
    return screen


async def test_a_scrap_disposition_ends_the_traveler_on_screen_and_in_the_queue(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    torque_ncr(ServiceFloor(service))
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "30001")  # Sam Patel, quality
        await burst(pilot, "TRV-1002")
        screen = traveler_screen(app)
        await pilot.press("f8")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("down", "down", "down", "enter")  # use as is, rework, repair, scrap
        await settle(pilot)
        assert isinstance(app.screen, DispositionScreen)
        assert "Ends the traveler" in screen_text(app)
        await enter_value(pilot, "Boss thread stripped beyond repair limits")
        await enter_value(pilot, "Red-tag and move to the MRB cage")
        assert "Rationale: Boss thread stripped" in screen_text(app)
        await sign_with(pilot, "30001", "3333")
        assert service.traveler("TRV-1002").status is TravelerStatus.SCRAPPED
        assert "TRV-1002 is scrapped; nothing more is recorded." in message(app)
        assert "✘ SCRAPPED" in text_of(screen.query_one("#traveler-header"))

        before = snapshot(service, "TRV-1002")
        await pilot.press("f2")  # nothing more: not even a start
        await settle(pilot)
        assert "TRV-1002 was scrapped" in message(app)
        assert snapshot(service, "TRV-1002") == before

        await pilot.press("escape")
        await settle(pilot)
        assert "✘ SCRAPPED" in screen_text(app)


async def test_a_use_as_is_is_refused_at_the_station_without_a_rationale(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    torque_ncr(ServiceFloor(service))
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "30001")
        await burst(pilot, "TRV-1002")
        await pilot.press("f8")
        await settle(pilot)
        await pilot.press("enter")  # use as is
        await settle(pilot)
        await pilot.press("enter", "enter")  # no rationale, no instructions
        await settle(pilot)
        assert isinstance(app.screen, DispositionScreen)  # not on to the signature
        assert "needs a rationale: why the part is fit to use" in screen_text(app)
        assert service.traveler("TRV-1002").ncrs[0].status == "open"


async def test_a_wrong_serial_is_refused_at_the_station_and_the_right_one_recorded(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    floor = ServiceFloor(service)
    for step in ("10.1", "10.2", "20.1", "20.2"):
        floor.work("ana", "TRV-1001", step)
    floor.do(
        floor.sign("ana", service.traveler("TRV-1001"), "20.2", Meaning.VERIFIED, signer="ivy")
    )
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")  # 30.1 Mark part
        screen = traveler_screen(app)
        assert "Marked serial [the serial]" in screen_text(app)
        await enter_value(pilot, "SN-WRONG-1")
        assert (
            "Marked serial: SN-WRONG-1 is not what this traveler needs (SN-7741-0001)."
            in message(app)
        )
        assert (
            item_of(step_of(service.traveler("TRV-1001"), "30.1"), "Marked serial").latest is None
        )
        await pilot.press("end", "ctrl+u")  # the refused text stays to correct; start again
        await enter_value(pilot, "SN-7741-0001")
        marked = item_of(step_of(service.traveler("TRV-1001"), "30.1"), "Marked serial")
        assert marked.latest is not None and marked.latest.value == "SN-7741-0001"
        assert screen.traveler.status is TravelerStatus.IN_WORK


async def test_another_parts_lot_is_refused_with_the_servers_reason(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")  # 10.1: the bracket forging lot
        assert "Bracket forging lot [part 7741-221]" in screen_text(app)
        await burst(pilot, "LOT-C300")
        await settle(pilot)
        assert "lot LOT-C300 is part 7741-300, not 7741-221" in message(app)
        lot = item_of(step_of(service.traveler("TRV-1001"), "10.1"), "Bracket forging lot")
        assert lot.latest is None


async def test_12_70_stays_12_70_from_the_keyboard_to_the_as_built_pdf(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    ServiceFloor(service).work("ana", "TRV-1001", "10.1")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        traveler_screen(app)
        await burst(pilot, "TL-0003")
        await type_in(pilot, "12.70")
        await pilot.press("enter")
        await settle(pilot)
        bore = item_of(step_of(service.traveler("TRV-1001"), "10.2"), "Bushing bore diameter")
        assert bore.latest is not None and bore.latest.value == "12.70"
        assert "✔ 12.70 mm · Ana Ortiz" in screen_text(app)
        assert "12.70 mm recorded, in tolerance" in message(app)
    with service.store.read() as conn:
        made = printable.read(conn, "TRV-1001")
    assert b'"value": "12.70"' in made.json
    assert "12.70" in pdf_text(pdf.render(made), tmp_path)


async def test_an_expired_certification_refuses_the_start_with_name_and_date(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    expired = (service.clock().date() - timedelta(days=10)).isoformat()
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1002", badge="10002")  # Ben Okafor; 20.1 needs torque
        assert (
            f"Ben Okafor's torque certification expired on {expired}; step 20.1 needs it."
            in message(app)
        )
        step = step_of(service.traveler("TRV-1002"), "20.1")
        assert step.status is StepStatus.NOT_STARTED
