"""Documents at the station: the real station on the real server opens TRV-1001's drawing, draws
it in the terminal (half cells; one shaded pixel per cell on the Linux console, from glyphs every
console font has), and zoom and pan keys change what is on screen. The page arithmetic and the
PDF pages are checked without a terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from kiosk.screens.document import DocumentScreen
from kiosk.server import demo_drawings, documents
from kiosk.server.documents import DocumentSpec
from kiosk.widgets.document_view import SHADES, DocumentView, Pages, View, console_rows, view_box
from kiosk.wire import Document
from tests.helpers import step_of
from tests.station import running, settle, work_on
from tests.station_helpers import screen_text
from tests.test_console_glyphs import missing

if TYPE_CHECKING:
    from tests.conftest import LiveServer


def test_zoom_shrinks_the_box_and_pan_stops_at_the_edge() -> None:
    whole, centre = view_box(400, 200, 80, 40, View(), pixel_aspect=1.0)
    assert whole == (0, 0, 400, 200) and centre == (0.5, 0.5)
    zoomed, _ = view_box(400, 200, 80, 40, View(zoom=2.0), pixel_aspect=1.0)
    assert zoomed == (100, 50, 300, 150)
    corner, (x, y) = view_box(400, 200, 80, 40, View(2.0, x=0.0, y=1.0), pixel_aspect=1.0)
    assert corner == (0, 100, 200, 200) and (x, y) == (0.25, 0.75)
    # On the console a cell is a pixel twice as tall as wide: the page still fits whole.
    tall, _ = view_box(400, 200, 80, 20, View(), pixel_aspect=2.0)
    assert tall == (0, 0, 400, 200)


def test_a_pdf_has_its_pages_and_an_image_one() -> None:
    pdf = Pages(demo_drawings.bushing_pdf(), "application/pdf")
    assert pdf.count == 2
    first = pdf.page(0)
    assert first.size == (840, 594)  # 420 x 297 points at 144 dpi
    assert first.getpixel((5, 5)) == (255, 255, 255)  # paper
    png = Pages(demo_drawings.bracket_png("C"), "image/png")
    assert png.count == 1 and png.page(0).size == (480, 320)


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="200mm" height="100mm"'
    b' viewBox="0 0 200 100"><rect x="20" y="20" width="60" height="40" fill="black"/>'
    b"</svg>"
)


def test_an_svg_drawing_is_rasterised_on_paper_at_a_bounded_size() -> None:
    page = Pages(SVG, "image/svg+xml").page(0)
    assert page.size == (1600, 800)  # whatever it declares: 1600 across, its own aspect
    assert page.getpixel((400, 320)) == (0, 0, 0)  # the rectangle, inked
    assert page.getpixel((100, 50)) == (255, 255, 255)  # paper, not transparent black
    huge = SVG.replace(b'width="200mm" height="100mm"', b'width="900000" height="450000"')
    assert Pages(huge, "image/svg+xml").page(0).size == (1600, 800)
    with pytest.raises(ValueError):
        Pages(b"<svg", "image/svg+xml")


def test_the_console_shades_use_only_what_every_console_font_draws() -> None:
    page = Pages(demo_drawings.bracket_png("C"), "image/png").page(0)
    rows = console_rows(page.resize((80, 20), Image.Resampling.BOX))
    drawn = set("".join(rows))
    assert drawn <= set(SHADES) and {" ", "█"} <= drawn  # paper and ink both there
    assert missing("".join(rows)) == set()


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)  # the station's drawing, not the store
async def test_the_station_draws_the_steps_drawing_and_zooms_and_pans_it(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 30)) as pilot:
        await work_on(pilot, "TRV-1001")  # in work: a value field has the focus
        assert "DWG-8810-011 rev C  Actuator bracket assembly" in screen_text(pilot.app)
        await pilot.press("ctrl+o")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DocumentScreen)
        view = screen.query_one(DocumentView)
        assert view.mode == "halfcell" and view.page is not None
        text = screen_text(pilot.app)
        assert "DWG-8810-011 rev C  Actuator bracket assembly" in text
        assert "page 1 of 1 · zoom 1x · image/png" in text
        lines = text.splitlines()
        body = lines[2 : 2 + view.size.height]
        assert sum(line.count("▀") for line in body) >= view.size.width * view.size.height // 2
        whole = view.picture()
        for _ in range(2):  # at a person's pace: two keys 1 ms apart are a scanner's burst
            await pilot.press("plus")
            await pilot.pause(0.12)
        await settle(pilot)
        assert view.view.zoom == 2.0 and "zoom 2x" in screen_text(pilot.app)
        zoomed = view.picture()
        assert whole is not None and zoomed is not None and zoomed.tobytes() != whole.tobytes()
        await pilot.press("right", "down")
        await settle(pilot)
        assert view.view.x > 0.5 and view.view.y > 0.5
        panned = view.picture()
        assert panned is not None and panned.tobytes() != zoomed.tobytes()
        await pilot.press("q")  # the tablet's QR code: a signed link, no token in it
        await settle(pilot)
        text = screen_text(pilot.app)
        assert "Scan with a tablet: opens DWG-8810-011 rev C" in text
        await pilot.press("escape")
        await settle(pilot)
        # On the Linux console: one shaded pixel per cell, every glyph in the console fonts.
        monkeypatch.setenv("TERM", "linux")
        await pilot.press("ctrl+o")
        await settle(pilot)
        view = pilot.app.screen.query_one(DocumentView)
        assert view.mode == "console"
        text = screen_text(pilot.app)
        drawing = "\n".join(text.splitlines()[2 : 2 + view.size.height])
        assert "█" in drawing and "▀" not in drawing
        assert missing(text) == set(), text
        await pilot.press("q")  # whole-cell modules: more than 100x30 holds, so it says so
        await settle(pilot)
        assert "This screen (100x30) is too small for the tablet's QR code" in screen_text(pilot.app)
        # A PDF's pages: step 10.2's bushing specification, two pages, PgDn turns to the second.
        await pilot.press("escape")
        monkeypatch.setenv("TERM", "xterm-256color")
        spec = step_of(live_server.service.traveler("TRV-1001"), "10.2").documents
        await pilot.app.push_screen(DocumentScreen(pilot.app.link, spec))
        await settle(pilot)
        assert "page 1 of 2 · zoom 1x · application/pdf" in screen_text(pilot.app)
        await pilot.press("pagedown")
        await settle(pilot)
        assert "page 2 of 2" in screen_text(pilot.app)
        await pilot.press("tab")  # the step's next document: the bracket drawing
        await settle(pilot)
        assert "DWG-8810-011 rev C" in screen_text(pilot.app)
        # An SVG drawing is drawn like a picture; one its renderer cannot read is named, and
        # the station carries on.
        await pilot.press("escape")
        svg, broken = add_documents(live_server, ("WIR-0100", SVG), ("WIR-0101", b"<svg>"))
        await pilot.app.push_screen(DocumentScreen(pilot.app.link, (svg, broken)))
        await settle(pilot)
        text = screen_text(pilot.app)
        assert "WIR-0100 rev A  Harness" in text and "page 1 of 1 · zoom 1x · image/svg+xml" in text
        assert "▀" in text
        await pilot.press("tab")
        await settle(pilot)
        assert "This file cannot be drawn here (ValueError)." in screen_text(pilot.app)


def add_documents(live_server: LiveServer, *files: tuple[str, bytes]) -> list[Document]:
    svc = live_server.service
    with svc.store.begin() as conn:
        return [
            documents.add(
                conn, svc.files, DocumentSpec(number=number, revision="A", title="Harness"),
                data, actor=None, now=datetime.now(UTC),
            )[0]
            for number, data in files
        ]  # fmt: skip


def test_the_imaging_libraries_load_only_when_a_document_opens() -> None:
    from kiosk.app import BEHIND_THE_BADGE_SCREEN
    from tests.test_import_hygiene import modules_after_import, under

    loaded = modules_after_import("kiosk.app", "kiosk.station", *BEHIND_THE_BADGE_SCREEN)
    assert "kiosk.screens.traveler" in loaded
    heavy_ones = ("PIL", "pypdfium2", "resvg_py", "textual_image", "segno")
    for heavy in (*heavy_ones, "kiosk.widgets.document_view"):
        assert under(loaded, heavy) == [], heavy
