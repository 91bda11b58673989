"""The compositor fix in kiosk/partial_paint.py writes to the terminal exactly what Textual's own
compositor writes, for any change on the station's screens; it is only cheaper to work out."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from textual.geometry import Region

from kiosk import partial_paint
from kiosk.app import KioskApp
from tests.conftest import LiveServer
from tests.station import burst, running, work_on
from tests.station_helpers import type_in

ON_SQLITE = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def test_it_is_written_for_the_textual_the_locks_pin() -> None:
    """After a Textual upgrade this fails: read the new `Compositor._get_renders` and re-check
    the fix against it (then set READ), or drop it if Textual now does the same."""
    assert partial_paint.install(), "Textual's compositor is not the one partial_paint was read from"


def changes(app: KioskApp) -> Iterator[list[Region]]:
    """Changes a screen can have: each widget's area, one line of it, one cell, and several
    widgets' areas at once (a key that changes the field and its verdict)."""
    placed = [
        region.intersection(clip)
        for region, clip in app.screen._compositor.visible_widgets.values()
        if region.intersection(clip).area
    ]
    for shown in placed:
        yield [shown]
        yield [Region(shown.x, shown.bottom - 1, shown.width, 1)]
        yield [Region(shown.right - 1, shown.y, 1, 1)]
    for first, second in zip(placed, placed[1:], strict=False):
        yield [first, second]


def written(app: KioskApp, change: list[Region]) -> str:
    """What the screen's compositor writes to the terminal for `change`."""
    compositor = app.screen._compositor
    compositor._dirty_regions.update(change)
    update = compositor.render_partial_update()
    assert update is not None
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor")
    return update.render_segments(console)


def same_either_way(app: KioskApp) -> None:
    checked = 0
    for change in changes(app):
        partial_paint.uninstall()
        textual = written(app, change)
        assert partial_paint.install()
        assert written(app, change) == textual, f"the fix paints {change} differently"
        checked += 1
    assert checked > 30  # the screen had its widgets in place


@ON_SQLITE
async def test_a_traveler_step_in_work_paints_the_same(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await work_on(pilot, "TRV-1002")
        await burst(pilot, "TL-0001")  # the torque field takes the keys
        await type_in(pilot, "15")
        same_either_way(pilot.app)


@ON_SQLITE
async def test_the_queue_paints_the_same(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(120, 40)) as pilot:
        await burst(pilot, "10001")
        same_either_way(pilot.app)
