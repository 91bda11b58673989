"""Scannable hand-off at the station: Ctrl+T on the traveler screen shows the traveler's own QR
code and Code 128, drawn in block characters, dark on light; the Code 128 on screen has exactly
the bars of the traveler's printed label (`kiosk label`), read back from the label's PNG; the
QR code's modules are the ones segno makes for the number. F1 calls a supervisor (help)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import segno
from PIL import Image
from textual.app import App
from textual.widgets import Static

from kiosk import labels
from kiosk.screens.handoff import (
    QUIET_CODE128,
    HandoffScreen,
    code128_modules,
    code128_rows,
    qr_rows,
)
from tests.conftest import LiveServer
from tests.station import running, settle, work_on
from tests.station_helpers import message, type_in

LEFT = {" ": (0, 0), "▌": (1, 0), "▐": (0, 1), "█": (1, 1)}
TOP = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}


def label_modules(code: str) -> str:
    """The bars of the printed label, read from its PNG: one module is PNG_MODULE_PX wide."""
    image = Image.open(io.BytesIO(labels.render(labels.make_label("traveler", code), "png")))
    grey = image.convert("L")
    y = grey.height // 4  # through the bars, above the human-readable line
    px = labels.PNG_MODULE_PX
    return "".join("1" if grey.getpixel((x + px // 2, y)) < 128 else "0"  # type: ignore[operator]
                   for x in range(0, grey.width - px + 1, px))  # fmt: skip


def test_the_code_128_on_screen_has_the_printed_labels_bars() -> None:
    rows = code128_rows("TRV-1002")
    drawn = "".join(f"{a}{b}" for ch in rows[0] for a, b in [LEFT[ch]])
    assert drawn.rstrip("0") == code128_modules("TRV-1002").rstrip("0")
    bars = drawn.strip("0")
    assert bars in label_modules("TRV-1002")  # the label's bars, margins aside
    assert drawn.startswith("0" * QUIET_CODE128)  # the quiet zone ISO/IEC 15417 asks for
    assert len(rows[0]) <= 70  # fits the 80-column console's dialog


def test_the_qr_code_on_screen_is_segnos_for_the_number() -> None:
    rows = qr_rows("TRV-1002")
    matrix = [list(r) for r in segno.make("TRV-1002", micro=False).matrix_iter(border=4)]
    drawn = [[TOP[ch][half] for ch in row] for row in rows for half in (0, 1)]
    assert drawn[: len(matrix)] == matrix
    assert len(rows) <= 16 and len(rows[0]) <= 70  # fits 80x24 with its heading and caption


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_ctrl_t_shows_the_traveler_code_and_f1_calls_for_help(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(80, 24)) as pilot:
        await work_on(pilot, "TRV-1001")
        await pilot.press("ctrl+t")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, HandoffScreen)
        shown = str(screen.query_one("#code", Static).render())
        assert shown.splitlines() == qr_rows("TRV-1001")
        await pilot.press("tab")
        await settle(pilot)
        assert str(screen.query_one("#code", Static).render()).splitlines() == code128_rows(
            "TRV-1001"
        )
        assert "Code 128 of TRV-1001" in str(screen.query_one("#caption", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, HandoffScreen)

        await pilot.press("f1")
        await settle(pilot)
        await pilot.press("enter")  # the first choice: help
        await settle(pilot)
        await type_in(pilot, "Press guard stuck")
        await pilot.press("enter")
        await settle(pilot)
        assert "Help requested on TRV-1001 step 10.1" in message(pilot.app)
    (request,) = live_server.service.traveler("TRV-1001").andon
    assert (request.kind, request.reason, request.raised_by) == (
        "help",
        "Press guard stuck",
        "Ana Ortiz",
    )


# --- on the Linux console: whole cells of █, or a plain word when the console is too small ---


def test_on_the_console_every_module_is_whole_cells() -> None:
    qr = qr_rows("TRV-1002", whole_cells=True)
    matrix = [list(r) for r in segno.make("TRV-1002", micro=False).matrix_iter(border=4)]
    assert set("".join(qr)) <= {"█", " "}
    assert [[1 if row[n] == "█" else 0 for n in range(0, len(row), 2)] for row in qr] == matrix
    assert all(row[n] == row[n + 1] for row in qr for n in range(0, len(row), 2))  # square
    (bars, *_rest) = code128_rows("TRV-1002", whole_cells=True)
    assert set(bars) <= {"█", " "}
    assert "".join("1" if c == "█" else "0" for c in bars) == code128_modules("TRV-1002")


class _Handoff(App[None]):
    def on_mount(self) -> None:
        self.push_screen(HandoffScreen("TRV-1001"))


@pytest.mark.parametrize(
    ("size", "shown"),
    [((136, 24), "Code 128"), ((80, 33), "QR code"), ((135, 32), None), ((80, 24), None)],
)
async def test_the_console_draws_the_code_that_fits_or_says_why_none(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], shown: str | None
) -> None:
    monkeypatch.setenv("TERM", "linux")
    async with _Handoff().run_test(size=size) as pilot:
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, HandoffScreen)
        caption = str(screen.query_one("#caption", Static).render())
        code = screen.query_one("#code", Static)
        if shown is None:  # one cell short of either code, at the boundary
            assert not code.display
            assert f"This screen ({size[0]}x{size[1]}) is too small" in caption
            assert "printed label" in caption
            return
        assert code.display and caption.startswith(f"{shown} of TRV-1001")
        drawn = str(code.render()).splitlines()
        assert set("".join(drawn)) <= {"█", " "}  # nothing the console's fonts lack
        qr = shown == "QR code"
        assert drawn == (qr_rows if qr else code128_rows)("TRV-1001", whole_cells=True)
