"""Every station flow end to end: the Textual app under Pilot against the real reference server.

Keys reach the app as they would on a station: badges, travelers, tools and lots as reader bursts
(`burst`), values and PINs typed by a person (`typed`), function keys pressed. What the tests check
is what a person sees on the screen and what the server recorded (or did not).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from textual.color import Color
from textual.widgets import DataTable, Input

from kiosk.app import KioskApp
from kiosk.screens.badge import BadgeScreen
from kiosk.screens.ncr import NcrScreen
from kiosk.screens.prompt import ChoiceScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.widgets.data_item_entry import DataItemEntry, describe, recorded_text
from kiosk.widgets.hold_banner import HoldBanner
from kiosk.widgets.status_bar import StatusBar
from kiosk.widgets.step_detail import StepDetail
from kiosk.widgets.step_list import StepList
from kiosk.wire import Meaning, RaiseNcr, StepStatus, Traveler, TravelerStatus
from tests.conftest import LiveServer, free_port
from tests.helpers import ServiceFloor, audit_count, item_of, snapshot, step_of
from tests.station import StationPilot, burst, make_app, running, settle, work_on
from tests.station_helpers import (
    enter_value,
    focused_input,
    message,
    screen_text,
    sign_with,
    stoppable_server,
    text_of,
    type_in,
)
from tests.test_screens_scale import go_to

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def traveler_screen(app: KioskApp) -> TravelerScreen:
    screen = app.screen
    assert isinstance(screen, TravelerScreen), f"expected the traveler screen, got {screen!r}"
    return screen


def entry(screen: TravelerScreen, label: str) -> DataItemEntry:
    return next(e for e in screen.query(DataItemEntry) if e.item.label == label)


def verdict(screen: TravelerScreen, label: str) -> str:
    return text_of(entry(screen, label).query_one(".verdict"))


def detail_text(screen: TravelerScreen) -> str:
    return "\n".join(text_of(w) for w in screen.query_one(StepDetail).query("Static"))


def calibration_due(service: ExecutionService, code: str) -> date:
    with service.store.begin() as conn:
        due = conn.execute(
            select(t.tools.c.calibration_due).where(t.tools.c.code == code)
        ).scalar_one()
    assert isinstance(due, date)
    return due


def work_steps(service: ExecutionService, number: str, *steps: str) -> None:
    """Bring a traveler forward on the server: Ana works and signs `steps` with good values."""
    floor = ServiceFloor(service)
    for step in steps:
        floor.work("ana", number, step)


# --- people -------------------------------------------------------------------------------------


async def test_badge_in_opens_the_work_queue(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        assert isinstance(app.screen, BadgeScreen)
        await burst(pilot, "10001")
        assert isinstance(app.screen, QueueScreen)
        assert app.person is not None and app.person.name == "Ana Ortiz"
        assert "Signed in: Ana Ortiz." in message(app)
        assert "Ana Ortiz (operator)" in text_of(app.screen.query_one(StatusBar))
        table = app.screen.query_one(DataTable)
        assert [str(table.get_row_at(r)[0]) for r in range(table.row_count)] == [
            "TRV-1001",
            "TRV-1002",
            "TRV-1003",
            "TRV-2000",
            "TRV-4001",
        ]


async def test_unknown_badge_says_so_and_changes_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        # Starting the station is audited (enrolment, its credential cache): count after it.
        audit_before = audit_count(live_server.service)
        await burst(pilot, "99999")
        assert isinstance(app.screen, BadgeScreen)
        assert app.person is None
        assert "Badge not recognised. Ask a supervisor to register it." in message(app)
        # The same badge typed at the keyboard (stations may allow it) gets the same answer.
        await enter_value(pilot, "99998")
        assert isinstance(app.screen, BadgeScreen) and app.person is None
        assert "Badge not recognised" in message(app)
        assert "nobody signed in" in text_of(app.screen.query_one(StatusBar))
    assert audit_count(live_server.service) == audit_before


async def test_operator_not_qualified_here_is_refused(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10003")  # Olu Field: qualified for PAINT only
        assert isinstance(app.screen, BadgeScreen)
        assert app.person is None
        assert "Olu Field is not qualified for work center ASSEMBLY." in message(app)


# --- the queue ------------------------------------------------------------------------------------


async def test_traveler_opens_from_the_queue_with_arrows_and_enter(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        table = app.screen.query_one(DataTable)
        # Typed keys go to the number field; the arrows move the table's cursor from there.
        assert focused_input(app).id == "traveler-number"
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await pilot.press("up", "up")
        assert table.cursor_row == 0
        await pilot.press("enter")
        await settle(pilot)
        screen = traveler_screen(app)
        assert screen.traveler.number == "TRV-1001"
        assert screen.step is not None and screen.step.number == "10.1"
        assert "TRV-1001" in text_of(screen.query_one("#traveler-header"))


# --- values, tools, material ----------------------------------------------------------------------


async def test_measurement_verdict_shows_as_typed_then_records(
    live_server: LiveServer, tmp_path: Path
) -> None:
    work_steps(live_server.service, "TRV-1001", "10.1")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        screen = traveler_screen(app)
        await burst(pilot, "TL-0003")  # the press tool, recorded by scan
        bore = "Bushing bore diameter"
        assert "[12.69–12.71 mm]" in text_of(entry(screen, bore).query_one(".label"))
        assert focused_input(app) is entry(screen, bore).query_one(Input)

        await type_in(pilot, "12.75")
        assert verdict(screen, bore) == "✘ OUT OF TOLERANCE"
        await pilot.press(*["backspace"] * 5)
        await type_in(pilot, "12.700")
        assert verdict(screen, bore) == "✔ in tolerance"
        # Judged on the station as typed: nothing has gone to the server yet.
        on_server = item_of(step_of(live_server.service.traveler("TRV-1001"), "10.2"), bore)
        assert on_server.latest is None

        await pilot.press("enter")
        await settle(pilot)
        on_server = item_of(step_of(live_server.service.traveler("TRV-1001"), "10.2"), bore)
        assert on_server.latest is not None
        assert (on_server.latest.value, on_server.latest.passed) == ("12.700", True)  # as read
        assert "recorded, in tolerance (12.69–12.71 mm)" in message(app)
        assert "✔ 12.700 mm · Ana Ortiz" in text_of(entry(screen, bore).query_one(".recorded"))


async def test_a_step_shown_after_another_shows_its_own_items_and_drafts(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The step pane fills the entries it has with the next step's items (mounting only what
    is missing): nothing of the step before may show through, and a draft comes back with it."""
    work_steps(live_server.service, "TRV-1001", "10.1")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        screen = traveler_screen(app)
        await burst(pilot, "TL-0003")
        bore = "Bushing bore diameter"
        await type_in(pilot, "12.75")
        assert verdict(screen, bore) == "✘ OUT OF TOLERANCE"

        trav = live_server.service.traveler("TRV-1001")
        for number in ("10.1", "20.1", "10.1", "20.2"):  # two items, three, two, three
            await go_to(pilot, number)
            step = step_of(trav, number)
            shown = [(e.item.id, e.value, verdict(screen, e.item.label)) for e in screen.query(DataItemEntry)]
            assert shown == [(item.id, "", "") for item in step.items]
            labels = [text_of(e.query_one(".label")) for e in screen.query(DataItemEntry)]
            assert labels == [describe(item) for item in step.items]
            recorded = [text_of(e.query_one(".recorded")) for e in screen.query(DataItemEntry)]
            assert recorded == [recorded_text(item) for item in step.items]
            if step.status is StepStatus.COMPLETE:
                assert all(e.disabled for e in screen.query(DataItemEntry))

        await go_to(pilot, "10.2")
        assert entry(screen, bore).value == "12.75"  # the draft, kept while away
        assert verdict(screen, bore) == "✘ OUT OF TOLERANCE"
        entry(screen, bore).query_one(Input).focus()
        await pilot.press(*["backspace"] * 5)
        await type_in(pilot, "12.700")
        await pilot.press("enter")
        await settle(pilot)
        on_server = item_of(step_of(live_server.service.traveler("TRV-1001"), "10.2"), bore)
        assert on_server.latest is not None and on_server.latest.value == "12.700"


async def test_expired_tool_is_refused_with_its_due_date(
    live_server: LiveServer, tmp_path: Path
) -> None:
    due = calibration_due(live_server.service, "TL-0002")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1002")  # 20.1 needs a torque wrench
        await pilot.press("f2")
        await settle(pilot)
        await burst(pilot, "TL-0002")
        said = message(app)
        assert "TL-0002 is out of calibration since" in said
        assert f"{due:%Y-%m-%d}" in said
        wrench = item_of(step_of(live_server.service.traveler("TRV-1002"), "20.1"), "Torque wrench")
        assert wrench.latest is None


async def test_material_scan_is_recorded(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        screen = traveler_screen(app)
        await burst(pilot, "LOT-A100")
        lot = item_of(
            step_of(live_server.service.traveler("TRV-1001"), "10.1"), "Bracket forging lot"
        )
        assert lot.latest is not None and lot.latest.value == "LOT-A100"
        assert "Bracket forging lot: LOT-A100 recorded." in message(app)
        recorded = text_of(entry(screen, "Bracket forging lot").query_one(".recorded"))
        assert "LOT-A100 · Ana Ortiz" in recorded
        # The next entry goes to the next item, never back into the one just recorded.
        assert focused_input(app) is entry(screen, "Kit complete per pick list").query_one(Input)


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("1x.5", id="letters"),
        # As markup, "[/]" raised an error that closed the station: it must show as typed.
        pytest.param("[/]", id="markup-brackets"),
    ],
)
async def test_a_value_that_is_not_a_number_is_refused_before_sending(
    live_server: LiveServer, tmp_path: Path, typed: str
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1002")
        screen = traveler_screen(app)
        await burst(pilot, "TL-0001")
        before = snapshot(live_server.service, "TRV-1002")
        await type_in(pilot, typed)
        assert verdict(screen, "Fastener torque") == f"✘ '{typed}' is not a number."
        await pilot.press("enter")
        await settle(pilot)
        assert f"Fastener torque: '{typed}' is not a number." in message(app)
        assert focused_input(app).value == typed  # kept, to be corrected
        assert app.is_running and app.screen is screen
        assert snapshot(live_server.service, "TRV-1002") == before


async def test_the_verdict_is_drawn_whole_as_it_grows_and_shrinks(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The verdict keeps a box while the field is in use and is then only repainted: a verdict
    longer than that box must still get the room it needs, and give it back, on the screen."""
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1002")
        await burst(pilot, "TL-0001")
        row = "Fastener torque [11.5–13.5 Nm]"

        def drawn() -> str:
            lines = screen_text(app).splitlines()
            below = lines[next(n for n, line in enumerate(lines) if row in line) + 1]
            return " ".join(below.split())

        await type_in(pilot, "1")
        assert "1 ✘ OUT OF TOLERANCE not recorded" in drawn()
        await type_in(pilot, "2")
        assert "12 ✔ in tolerance not recorded" in drawn()
        await type_in(pilot, "x")  # longer than the box kept for it
        assert "12x ✘ '12x' is not a number." in drawn()
        await pilot.press("backspace")
        await settle(pilot)
        assert "12 ✔ in tolerance not recorded" in drawn()
        await pilot.press("backspace", "backspace")
        await settle(pilot)
        assert drawn().endswith("number not recorded")  # the field's hint again, no verdict


# --- signatures -----------------------------------------------------------------------------------


async def step_10_1_ready_to_sign(pilot: StationPilot) -> TravelerScreen:
    """Ana on TRV-1001: step 10.1 started, lot scanned, kit acknowledged."""
    await burst(pilot, "10001")
    await burst(pilot, "TRV-1001")
    screen = traveler_screen(pilot.app)
    await pilot.press("f2")
    await settle(pilot)
    await burst(pilot, "LOT-A100")
    await enter_value(pilot, "ack")
    return screen


async def test_sign_off_shows_the_signature_manifestation(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        screen = await step_10_1_ready_to_sign(pilot)
        await pilot.press("f5")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, SignOffScreen)
        assert prompt.meaning == Meaning.PERFORMED.value
        shown = screen_text(app)
        assert "By signing you declare this PERFORMED" in shown
        assert "Bracket forging lot: LOT-A100" in shown

        await sign_with(pilot, "10001", "1111")
        assert app.screen is screen
        step = step_of(live_server.service.traveler("TRV-1001"), "10.1")
        assert step.status is StepStatus.COMPLETE
        (signature,) = step.signatures
        assert (signature.printed_name, signature.meaning) == ("Ana Ortiz", Meaning.PERFORMED)
        assert "Step 10.1 signed as performed by Ana Ortiz." in message(app)

        # The screen moved on to 10.2; back on 10.1 the manifestation is shown.
        assert screen.step is not None and screen.step.number == "10.2"
        screen.query_one(StepList).focus()
        await pilot.press("up")
        await settle(pilot)
        assert screen.step is not None and screen.step.number == "10.1"
        # Printed name, date-time and meaning: on screen (wrapped before the station at 80).
        shown = f"✍ PERFORMED by Ana Ortiz, {signature.server_time:%Y-%m-%d %H:%M} UTC,"
        assert f"{shown} DEMO-01" in detail_text(screen)
        assert shown in screen_text(app)


async def test_a_wrong_pin_is_refused_naming_nobody_and_signs_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await step_10_1_ready_to_sign(pilot)
        await pilot.press("f5")
        await settle(pilot)
        assert isinstance(app.screen, SignOffScreen)
        prompt = app.screen
        await sign_with(pilot, "10001", "1112")
        # Said inside the prompt, which stays open: the badge is kept, the PIN asked again.
        assert app.screen is prompt
        assert "Badge or PIN not accepted." in message(app)
        assert "Ana" not in message(app)
        assert focused_input(app).id == "pin" and focused_input(app).value == ""
        step = step_of(live_server.service.traveler("TRV-1001"), "10.1")
        assert step.signatures == () and step.status is StepStatus.IN_WORK
        await type_in(pilot, "1111")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TravelerScreen)
        step = step_of(live_server.service.traveler("TRV-1001"), "10.1")
        assert step.status is StepStatus.COMPLETE


def inspection_step_recorded(service: ExecutionService, performer: str) -> None:
    """TRV-1001 on the server: 10.1 to 20.1 done; 20.2 started, its values recorded by `performer`."""
    work_steps(service, "TRV-1001", "10.1", "10.2", "20.1")
    floor = ServiceFloor(service)
    trav = floor.do(floor.start(performer, service.traveler("TRV-1001"), "20.2")).traveler
    for label, value in (("Visual inspection", "pass"), ("Mounting face flatness", "0.02")):
        trav = floor.do(floor.record(performer, trav, "20.2", label, value)).traveler


async def test_inspector_buys_off_a_step_the_operator_performed(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    inspection_step_recorded(service, "ana")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1001")
        screen = traveler_screen(app)
        assert screen.step is not None and screen.step.number == "20.2"
        await pilot.press("f5")
        await settle(pilot)
        assert "Sign off step" in screen_text(app)
        await sign_with(pilot, "10001", "1111")
        assert "Waiting for inspector buy-off" in detail_text(screen)

        # Ana tries to buy off her own step: refused, nothing signed.
        await pilot.press("f5")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, SignOffScreen) and prompt.meaning == Meaning.VERIFIED.value
        assert "Inspector buy-off" in screen_text(app)
        await sign_with(pilot, "10001", "1111")
        assert "Ana Ortiz may not buy off step 20.2: needs inspector or quality." in message(app)
        step = step_of(service.traveler("TRV-1001"), "20.2")
        assert step.status is StepStatus.IN_WORK
        assert [s.meaning for s in step.signatures] == [Meaning.PERFORMED]

        # Ivy, an inspector, badges in at the same station and buys it off.
        await burst(pilot, "20001")
        assert app.person is not None and app.person.name == "Ivy Chen"
        await burst(pilot, "TRV-1001")
        screen = traveler_screen(app)
        assert screen.step is not None and screen.step.number == "20.2"
        await pilot.press("f5")
        await settle(pilot)
        assert "Inspector buy-off" in screen_text(app)
        await sign_with(pilot, "20001", "2222")
        step = step_of(service.traveler("TRV-1001"), "20.2")
        assert step.status is StepStatus.COMPLETE
        verified = next(s for s in step.signatures if s.meaning is Meaning.VERIFIED)
        assert verified.printed_name == "Ivy Chen"
        assert "Step 20.2 signed as verified by Ivy Chen." in message(app)
        screen.query_one(StepList).focus()
        await pilot.press("up")
        await settle(pilot)
        assert screen.step is not None and screen.step.number == "20.2"
        shown = detail_text(screen)
        assert f"✍ VERIFIED by Ivy Chen, {verified.server_time:%Y-%m-%d %H:%M} UTC" in shown
        assert "✍ PERFORMED by Ana Ortiz" in shown


async def test_the_performer_cannot_also_buy_off(live_server: LiveServer, tmp_path: Path) -> None:
    service = live_server.service
    inspection_step_recorded(service, "ivy")  # an inspector may perform steps too
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "20001")
        await burst(pilot, "TRV-1001")
        await pilot.press("f5")
        await settle(pilot)
        await sign_with(pilot, "20001", "2222")  # performed
        await pilot.press("f5")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, SignOffScreen) and prompt.meaning == Meaning.VERIFIED.value
        await sign_with(pilot, "20001", "2222")
        assert "Ivy Chen performed step 20.2 and cannot also buy it off." in message(app)
        step = step_of(service.traveler("TRV-1001"), "20.2")
        assert step.status is StepStatus.IN_WORK
        assert [(s.printed_name, s.meaning) for s in step.signatures] == [
            ("Ivy Chen", Meaning.PERFORMED)
        ]


# --- holds and NCRs -------------------------------------------------------------------------------


async def test_hold_blocks_work(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1003")
        screen = traveler_screen(app)
        banner = screen.query_one(HoldBanner)
        assert banner.display
        assert banner.styles.background == Color.parse(app.get_css_variables()["error"])
        said = text_of(banner)
        assert "ON HOLD" in said
        assert "Awaiting engineering review of drawing change ECN-2291" in said
        assert all(e.disabled for e in screen.query(DataItemEntry))

        before = snapshot(live_server.service, "TRV-1003")
        await pilot.press("f2")
        await settle(pilot)
        assert "TRV-1003 is on hold" in message(app)
        assert "Nothing can be recorded until a supervisor or quality releases it." in message(app)
        assert screen.step is not None and screen.step.status is StepStatus.NOT_STARTED
        assert snapshot(live_server.service, "TRV-1003") == before  # not even an audit entry


async def test_out_of_tolerance_torque_offers_an_ncr_that_holds_the_traveler(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1002")
        screen = traveler_screen(app)
        await burst(pilot, "TL-0001")
        await type_in(pilot, "15")
        assert verdict(screen, "Fastener torque") == "✘ OUT OF TOLERANCE"
        await pilot.press("enter")
        await settle(pilot)

        # Recorded, and the NCR prompt is offered without asking.
        torque = item_of(
            step_of(live_server.service.traveler("TRV-1002"), "20.1"), "Fastener torque"
        )
        assert torque.latest is not None and torque.latest.passed is False
        prompt = app.screen
        assert isinstance(prompt, NcrScreen)
        assert prompt.query_one("#description", Input).value == (
            "Fastener torque 15 Nm outside 11.5–13.5 Nm"
        )
        assert prompt.query_one("#defect", Input).value == "TRQ"  # a torque failure's code
        await pilot.press("enter", "enter", "enter")  # description, defect code, quantity
        await settle(pilot)

        assert app.screen is screen
        trav = live_server.service.traveler("TRV-1002")
        assert trav.status is TravelerStatus.ON_HOLD
        assert trav.hold is not None and trav.hold.ncr_number is not None
        (ncr,) = trav.ncrs
        assert (ncr.number, ncr.defect_code, ncr.quantity) == (trav.hold.ncr_number, "TRQ", 1)
        assert f"{ncr.number} raised; TRV-1002 is on hold" in message(app)
        assert f"ON HOLD [{ncr.number}]" in text_of(screen.query_one(HoldBanner))


def raise_torque_ncr(service: ExecutionService) -> Traveler:
    """TRV-1002 20.1 on the server: torque 15 Nm recorded by Ana and an NCR raised on it."""
    floor = ServiceFloor(service)
    trav = floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque wrench", "TL-0001")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Fastener torque", "15")).traveler
    torque = item_of(step_of(trav, "20.1"), "Fastener torque")
    return floor.do(
        RaiseNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1002",
            item_id=torque.id,
            description="Fastener torque 15 Nm outside 11.5–13.5 Nm",
            defect_code="DIM",
        )
    ).traveler


async def test_supervisor_dispositions_the_ncr_and_releases_the_hold(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    held = raise_torque_ncr(service)
    (ncr,) = held.ncrs
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "30001")  # Sam Patel, supervisor and quality
        await burst(pilot, "TRV-1002")
        screen = traveler_screen(app)
        assert screen.query_one(HoldBanner).display

        await pilot.press("f8")
        await settle(pilot)
        choice = app.screen
        assert isinstance(choice, ChoiceScreen)
        assert f"Disposition {ncr.number}" in screen_text(app)
        await pilot.press("down", "up", "enter")  # the first choice: use as is
        await settle(pilot)
        await enter_value(pilot, "Bolt grip length allows 15 Nm per SRM 51-20")  # rationale
        await pilot.press("enter")  # no instructions for a use-as-is
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, SignOffScreen) and prompt.meaning == Meaning.APPROVED.value
        assert "Disposition: use as is" in screen_text(app)
        await sign_with(pilot, "30001", "3333")
        (after,) = service.traveler("TRV-1002").ncrs
        assert after.status == "awaiting_approval" and after.disposition == "use_as_is"
        assert f"{ncr.number} dispositioned use as is; it needs a second approval" in message(app)

        await pilot.press("f8")  # the second approval, by the plant's second approver (Raj)
        await settle(pilot)
        assert "Second approval" in screen_text(app)
        await sign_with(pilot, "31001", "3131")
        (after,) = service.traveler("TRV-1002").ncrs
        assert after.status == "dispositioned"
        assert after.approval_signature is not None
        assert after.approval_signature.printed_name == "Raj Mehta"
        assert service.traveler("TRV-1002").status is TravelerStatus.ON_HOLD  # not yet released

        await pilot.press("f7")
        await settle(pilot)
        assert "Release hold" in screen_text(app)
        await sign_with(pilot, "30001", "3333")
        released = service.traveler("TRV-1002")
        assert released.hold is None and released.status is not TravelerStatus.ON_HOLD
        assert "Hold on TRV-1002 released by Sam Patel." in message(app)
        assert not screen.query_one(HoldBanner).display


# --- shared consoles: idle lock and user switch ---------------------------------------------------


async def test_idle_lock_fires_and_the_same_badge_returns_to_the_typed_entry(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's config allows no less than 15 s; two seconds keep the test short.
    monkeypatch.setattr(KioskApp, "idle_seconds", 2.0)
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        screen = traveler_screen(app)
        await type_in(pilot, "LOT-A1")  # typed, not entered
        lot = entry(screen, "Bracket forging lot").query_one(Input)
        assert lot.value == "LOT-A1"

        # Keys keep the station open: 1.2 s, a key, 1.2 s more is 2.4 s but never 2 s idle.
        await pilot.pause(1.2)
        await type_in(pilot, "0")
        await pilot.pause(1.2)
        assert app.screen is screen

        await pilot.pause(1.2)  # now nobody touches it: locked 2 s after the last key
        locked = app.screen
        assert isinstance(locked, BadgeScreen) and locked.locked_for == "Ana Ortiz"
        assert text_of(locked.query_one(".prompt")) == (
            "Station locked. Ana Ortiz: scan your badge to continue where you were. "
            "Anyone else: your badge signs them out."
        )
        assert "LOT-A10" not in screen_text(app)  # the entry is covered, not shown

        await burst(pilot, "10001")
        assert app.screen is screen
        assert lot.value == "LOT-A10"
        on_server = item_of(
            step_of(live_server.service.traveler("TRV-1001"), "10.1"), "Bracket forging lot"
        )
        assert on_server.latest is None  # kept on the station, never sent


async def test_another_badge_at_a_locked_station_switches_user(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        await type_in(pilot, "LOT-A1")
        app.lock_station()
        await settle(pilot)
        assert isinstance(app.screen, BadgeScreen)

        await burst(pilot, "10002")  # Ben takes over the station
        assert app.person is not None and app.person.name == "Ben Okafor"
        assert isinstance(app.screen, QueueScreen)
        assert not any(isinstance(s, TravelerScreen) for s in app.screen_stack)
        await burst(pilot, "TRV-1001")
        ben_sees = traveler_screen(app)
        assert entry(ben_sees, "Bracket forging lot").value == ""  # not Ana's entry

        await burst(pilot, "10001")  # Ana is back: her unsent entry is still hers
        await burst(pilot, "TRV-1001")
        assert entry(traveler_screen(app), "Bracket forging lot").value == "LOT-A1"


# --- the backend out of reach ---------------------------------------------------------------------


async def test_server_unreachable_at_start_says_so(live_server: LiveServer, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # a real station token, but nobody listening
    async with running(closed, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        assert isinstance(app.screen, BadgeScreen)
        assert f"Cannot reach the server at {closed}" in message(app)
        assert "✘ OFFLINE" in text_of(app.screen.query_one(StatusBar))
        # A station that was never online has no credential cache: nobody can be identified.
        await burst(pilot, "10001")
        assert app.person is None and isinstance(app.screen, BadgeScreen)
        assert "no credential cache yet" in message(app)


async def test_server_lost_mid_work_keeps_recording_and_delivers_later(
    service: ExecutionService, tmp_path: Path
) -> None:
    with stoppable_server(service) as server:
        async with running(server.url, server.token(), tmp_path) as pilot:
            app = pilot.app
            await work_on(pilot, "TRV-1001")
            screen = traveler_screen(app)
            await burst(pilot, "LOT-A100")
            await type_in(pilot, "ack")

            server.stop()
            await pilot.press("enter")
            await settle(pilot)
            # Recorded on the station, shown as recorded, and counted as waiting.
            assert "Recorded on this station" in message(app)
            assert app.screen is screen
            kit = item_of(step_of(screen.traveler, "10.1"), "Kit complete per pick list")
            assert kit.latest is not None and kit.latest.value == "acknowledged"
            app.check_health()
            await settle(pilot)
            bar = text_of(screen.query_one(StatusBar))
            assert "✘ OFFLINE" in bar and "1 waiting" in bar
            on_server = item_of(
                step_of(service.traveler("TRV-1001"), "10.1"), "Kit complete per pick list"
            )
            assert on_server.latest is None

            server.start()
            app.check_health()
            for _ in range(50):
                await settle(pilot)
                if app.link.waiting() == 0:
                    break
            assert app.link.waiting() == 0
            app.refresh_status()
            assert "0 waiting" in text_of(screen.query_one(StatusBar))
    delivered = item_of(step_of(service.traveler("TRV-1001"), "10.1"), "Kit complete per pick list")
    assert delivered.latest is not None and delivered.latest.value == "acknowledged"


async def test_a_changed_revision_must_be_acknowledged(
    live_server: LiveServer, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from kiosk.screens.prompt import ChoiceScreen
    from kiosk.server import schema as t

    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1001")
        screen = traveler_screen(app)
        step_id = screen.traveler.steps[0].id
        # Engineering releases revision D of step 10.1 while the traveler is open.
        with live_server.service.store.begin() as conn:
            conn.execute(
                update(t.steps)
                .where(t.steps.c.id == step_id)
                .values(
                    revision="D", instructions="Check the kit against pick list PL-7741-220 rev D."
                )
            )
        await pilot.press("f4")
        await settle(pilot)
        notice = app.screen
        assert isinstance(notice, ChoiceScreen)
        assert "step 10.1: rev C → rev D" in screen_text(app)
        await pilot.press("escape")  # there is no way around it
        await settle(pilot)
        assert app.screen is notice
        await pilot.press("enter")
        await settle(pilot)
        assert traveler_screen(app) is screen
        assert "New revision acknowledged." in message(app)
        assert "rev D" in screen_text(app)


async def test_the_clock_firing_as_the_station_closes_is_harmless(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The status bar's clock ticks each second; a tick that fires while the station is taking
    its screens down (the moment CI once caught: "No screens on stack") finds none, and does
    nothing."""
    app = make_app(live_server.url, live_server.token(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query(StatusBar)  # the clock is there while the station runs
    assert not app.screen_stack
    app._tick()  # the 1 s timer's callback, as it fired then
