"""Screens at any size: a long traveler read and listed one operation at a time, a step found by
its number, and a queue read in pages, updated in place and typed into at a person's pace.

The station runs under Pilot against the real reference server; what is checked is what a person
sees (the list, the header, the message line) and what was read from the server (how many steps,
how many queue rows). Timing is measured by scripts/bench_interaction.py, never asserted here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable

from kiosk.screens.prompt import PromptScreen
from kiosk.screens.queue import PAGE, QueueScreen
from kiosk.screens.traveler import TravelerScreen, header_text, operation_of
from kiosk.server.service import ExecutionService
from kiosk.widgets.step_detail import StepDetail
from kiosk.widgets.step_list import StepList
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor
from tests.station import StationPilot, burst, running, settle, typed
from tests.station_helpers import focused_input, message, screen_text, text_of, type_in
from tests.test_reads_scale import many_travelers

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def traveler_screen(pilot: StationPilot) -> TravelerScreen:
    screen = pilot.app.screen
    assert isinstance(screen, TravelerScreen), f"expected the traveler screen, got {screen!r}"
    return screen


def listed(screen: TravelerScreen) -> list[str]:
    steps = screen.query_one(StepList)
    return [str(steps.get_option_at_index(n).id) for n in range(steps.option_count)]


def queue_rows(pilot: StationPilot) -> list[str]:
    table: DataTable[Text] = pilot.app.screen.query_one(DataTable)
    return [str(table.get_row_at(r)[0]) for r in range(table.row_count)]


@asynccontextmanager
async def on_long_traveler(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[StationPilot]:
    """The station with Ana badged in and the 200-step TRV-2000 scanned."""
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "TRV-2000")
        yield pilot


async def go_to(pilot: StationPilot, wanted: str) -> None:
    await pilot.press("ctrl+g")
    await settle(pilot)
    assert isinstance(pilot.app.screen, PromptScreen)
    await type_in(pilot, wanted)
    await pilot.press("enter")
    await settle(pilot)


# --- a long traveler ------------------------------------------------------------------------------


async def test_a_long_traveler_opens_at_its_current_operation(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with on_long_traveler(live_server, tmp_path) as pilot:
        screen = traveler_screen(pilot)
        # 10 of the 200 steps: operation 10, where the work stands, read alone.
        assert [s.number for s in screen.traveler.steps] == [f"10.{n}" for n in range(1, 11)]
        assert len(listed(screen)) == 10
        header = text_of(screen.query_one("#traveler-header"))
        assert header.endswith("· Op 10 Rib station 1")
        # The list cuts titles short at 80 columns; the step in detail has its title whole.
        detail = text_of(screen.query_one(StepDetail).query_one(".title"))
        assert "Step 10.1 Drill and fasten station 1-1 · rev B" in detail


async def test_go_to_step_reads_its_operation_and_the_header_follows(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with on_long_traveler(live_server, tmp_path) as pilot:
        await go_to(pilot, "200.10")
        screen = traveler_screen(pilot)
        assert screen.step is not None and screen.step.number == "200.10"
        assert [s.number for s in screen.traveler.steps] == [f"200.{n}" for n in range(1, 11)]
        # Operation 200, never operation 20 (whose number also begins "200.10").
        assert text_of(screen.query_one("#traveler-header")).endswith("· Op 200 Rib station 20")
        assert "Drill and fasten station 20-10" in screen_text(pilot.app)
        # Moving down the list moves the header along with the step shown.
        await go_to(pilot, "30")
        assert screen.step is not None and screen.step.number == "30.1"
        assert text_of(screen.query_one("#traveler-header")).endswith("· Op 30 Rib station 3")


async def test_the_arrows_past_either_end_move_to_the_operation_beside(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with on_long_traveler(live_server, tmp_path) as pilot:
        screen = traveler_screen(pilot)
        screen.query_one(StepList).focus()
        await pilot.press("up")  # on 10.1, the routing's first step
        await settle(pilot)
        assert "This is the first operation of TRV-2000." in message(pilot.app)
        assert screen.step is not None and screen.step.number == "10.1"
        for _ in range(10):
            await pilot.press("down")
        await settle(pilot)
        assert screen.step is not None and screen.step.number == "20.1"
        assert [s.number for s in screen.traveler.steps] == [f"20.{n}" for n in range(1, 11)]
        assert text_of(screen.query_one("#traveler-header")).endswith("· Op 20 Rib station 2")
        await pilot.press("up")
        await settle(pilot)
        assert screen.step is not None and screen.step.number == "10.10"


async def test_go_to_a_step_that_is_not_there_says_so_and_changes_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with on_long_traveler(live_server, tmp_path) as pilot:
        screen = traveler_screen(pilot)
        before = (screen.selected, screen.operation, listed(screen))
        await go_to(pilot, "999.9")
        assert traveler_screen(pilot) is screen
        assert "TRV-2000 has no step or operation 999.9." in message(pilot.app)
        assert (screen.selected, screen.operation, listed(screen)) == before


async def test_the_same_traveler_screen_serves_every_scan(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with on_long_traveler(live_server, tmp_path) as pilot:
        first = traveler_screen(pilot)
        await pilot.press("escape")
        await settle(pilot)
        await burst(pilot, "TRV-1001")
        again = traveler_screen(pilot)
        assert again is first
        assert again.traveler.number == "TRV-1001"
        header = text_of(again.query_one("#traveler-header"))
        assert header.startswith("TRV-1001 ·") and "Op 10 Kit and prepare" in header
        assert "TRV-2000" not in screen_text(pilot.app)


def test_a_step_belongs_to_the_longest_operation_number_before_its_dot(
    service: ExecutionService,
) -> None:
    trav = service.traveler("TRV-2000")
    step_200_10 = next(s for s in trav.steps if s.number == "200.10")
    op = operation_of(trav, step_200_10)
    assert op is not None and op.number == "200"
    assert header_text(trav, step_200_10).endswith("· Op 200 Rib station 20")


# --- the queue ------------------------------------------------------------------------------------


async def test_a_traveler_number_typed_at_a_persons_pace_opens_what_was_typed(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        assert isinstance(pilot.app.screen, QueueScreen)
        await pilot.press("down")  # the highlighted row is TRV-1002 now
        await typed(pilot, "TRV-2000", gap=0.15)  # a person, not a reader
        await settle(pilot)
        assert focused_input(pilot.app).value == "TRV-2000"  # no key lost to the table
        await pilot.press("enter")
        await settle(pilot)
        assert traveler_screen(pilot).traveler.number == "TRV-2000"


async def test_typing_searches_the_queue_and_enter_with_nothing_typed_opens_the_row(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await typed(pilot, "trv-100")
        await pilot.pause(0.4)  # the search waits for typing to pause
        await settle(pilot)
        assert queue_rows(pilot) == ["TRV-1001", "TRV-1002", "TRV-1003"]
        await typed(pilot, "9")
        await pilot.pause(0.4)
        await settle(pilot)
        assert queue_rows(pilot) == []
        assert "No traveler here matches trv-1009." in message(pilot.app)
        await pilot.press("backspace", "backspace", "backspace", "backspace")
        await pilot.press("backspace", "backspace", "backspace", "backspace")
        await pilot.pause(0.4)
        await settle(pilot)
        await pilot.press("down", "down")
        await pilot.press("enter")
        await settle(pilot)
        assert traveler_screen(pilot).traveler.number == "TRV-1003"


async def test_a_long_queue_is_read_a_page_at_a_time_and_updated_in_place(
    live_server: LiveServer, service: ExecutionService, tmp_path: Path
) -> None:
    many_travelers(service, PAGE + 30)
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        table: DataTable[Text] = pilot.app.screen.query_one(DataTable)
        assert table.row_count == PAGE  # one page of the queue's 135 travelers
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown", "pagedown")
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        await settle(pilot)
        rows = queue_rows(pilot)
        assert len(rows) == PAGE + 30 + 5 and rows == sorted(rows)  # and the demo's five
        at, scrolled = table.cursor_row, table.scroll_y
        before = dict(table.rows)
        assert "in work" not in str(table.get_row("TRV-M00003")[3])
        floor = ServiceFloor(service)  # someone at another station starts TRV-M00003
        floor.do(floor.start("ana", service.traveler("TRV-M00003"), "10.1"))
        await pilot.press("f4")
        await settle(pilot)
        # A refresh changes the rows that changed: the same rows by key, the cursor and the
        # scroll kept, the started traveler's cells updated in its own row, no row rebuilt.
        assert list(table.rows) == list(before)
        assert (table.cursor_row, table.scroll_y) == (at, scrolled) and scrolled > 0
        assert all(table.rows[key] is row for key, row in before.items())
        started = table.get_row("TRV-M00003")
        assert "in work" in str(started[3]) and "10.1" in str(started[4])
