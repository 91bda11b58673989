"""A document's page drawn in the terminal, with zoom and pan.

The page is a Pillow image (a PNG or JPEG as is, a PDF page rendered by PDFium, an SVG drawing
rasterised by resvg on white paper). What is on
screen is the part of it the zoom and pan select, scaled to the widget, drawn by one of:

- `halfcell`: textual-image's half-cell renderable, two pixels per cell in true colour;
- `tgp`: textual-image's Terminal Graphics Protocol widget, real pixels, where the terminal
  says it is kitty (TERM=xterm-kitty or KITTY_WINDOW_ID): textual-image cannot ask the terminal
  once Textual reads it, so the station goes by what the environment says;
- `console`: on the Linux console (TERM=linux), whose fonts have no half blocks, one pixel per
  cell in four shades of grey from characters every console font has (' ', '░', '▒', '█').

Pillow, PDFium, resvg and textual-image load when the first document opens, never at the station's start.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from kiosk.themes.console import on_linux_console

if TYPE_CHECKING:
    from PIL.Image import Image
    from textual.app import RenderResult

Mode = Literal["halfcell", "tgp", "console"]
SHADES = " ░▒█"
"""Paper to ink, each drawable in every Debian console font (tests/test_console_glyphs.py)."""
INK_STEPS = (12, 48, 100)
"""Darkness (0 paper to 255 ink) above which a pixel is drawn ░, ▒, █."""
ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""1: the whole page fits; each + is the next step."""
PAN_STEP = 0.2
"""Arrow keys move the view by this share of what is on screen."""
PDF_SCALE = 2.0
"""PDF points to pixels: 144 dpi, enough to zoom a drawing's title block."""
SVG_WIDTH = 1600
"""Pixels across an SVG drawing is rasterised at, whatever size it declares: as sharp as a PDF
page at 144 dpi, and bounded, so a drawing declaring a huge canvas cannot exhaust memory."""


def graphics_mode(environ: Mapping[str, str] | None = None) -> Mode:
    env = os.environ if environ is None else environ
    if on_linux_console(env):
        return "console"
    if env.get("TERM") == "xterm-kitty" or "KITTY_WINDOW_ID" in env:
        return "tgp"
    return "halfcell"


# --- pages -------------------------------------------------------------------------------------


class Pages:
    """The pages of one document file, rendered when first shown."""

    def __init__(self, data: bytes, media_type: str) -> None:
        self.media_type = media_type
        self._data = data
        self._pdf: Any = None
        self._done: dict[int, Image] = {}
        if media_type == "application/pdf":
            import pypdfium2  # PDFium: loaded with the first PDF shown

            self._pdf = pypdfium2.PdfDocument(data)
            self.count = len(self._pdf)
        elif media_type == "image/svg+xml":
            import resvg_py  # resvg: loaded with the first SVG shown

            # No resources_dir: an SVG's links to other files are never followed. dpi: its
            # default of 0 makes a drawing sized in mm or inches "an invalid size".
            self._data = resvg_py.svg_to_bytes(
                svg_string=data.decode("utf-8"), width=SVG_WIDTH, dpi=96.0, background="white"
            )
            self.count = 1
        elif media_type in ("image/png", "image/jpeg"):
            self.count = 1
        else:
            self.count = 0

    def page(self, n: int) -> Image:
        if n not in self._done:
            if self._pdf is not None:
                self._done[n] = self._pdf[n].render(scale=PDF_SCALE).to_pil().convert("RGB")
            else:
                from PIL import Image as PILImage

                with PILImage.open(io.BytesIO(self._data)) as opened:
                    self._done[n] = opened.convert("RGB")
        return self._done[n]


# --- what is on screen -------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The part of the page on screen: zoom and the centre, as shares of the page's size."""

    zoom: float = 1.0
    x: float = 0.5
    y: float = 0.5


def view_box(
    width: int, height: int, cols: int, rows: int, view: View, pixel_aspect: float
) -> tuple[tuple[int, int, int, int], tuple[float, float]]:
    """The box of the page (left, top, right, bottom, in page pixels) that fills `cols` x `rows`
    target pixels, each `pixel_aspect` times as tall as wide, and the centre it was clamped to."""
    fit = max(width / cols, height / (rows * pixel_aspect))  # page pixels per target pixel width
    scale = fit / view.zoom
    box_w, box_h = cols * scale, rows * pixel_aspect * scale
    cx = _clamp(view.x * width, box_w / 2, width - box_w / 2, width / 2)
    cy = _clamp(view.y * height, box_h / 2, height - box_h / 2, height / 2)
    left, top = round(cx - box_w / 2), round(cy - box_h / 2)
    box = (left, top, left + max(1, round(box_w)), top + max(1, round(box_h)))
    return box, (cx / width, cy / height)


def _clamp(value: float, low: float, high: float, middle: float) -> float:
    return middle if low > high else min(max(value, low), high)


def visible(page: Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image:
    """The box of the page on white paper (a box larger than the page), scaled to `size`."""
    from PIL import Image as PILImage

    left, top, right, bottom = box
    paper = PILImage.new("RGB", (right - left, bottom - top), (255, 255, 255))
    paper.paste(page, (-left, -top))
    return paper.resize(size, PILImage.Resampling.BOX)


def console_rows(picture: Image) -> list[str]:
    """One character per pixel: the grey of each in four shades. A drawing's lines are thin, so
    a pixel with a little ink in it already shows: the steps lean to ink."""
    grey = picture.convert("L")
    width, values = grey.width, grey.tobytes()
    shade = [SHADES[sum(255 - v > t for t in INK_STEPS)] for v in range(256)]
    return [
        "".join(shade[v] for v in values[y * width : (y + 1) * width]) for y in range(grey.height)
    ]


def _textual_image() -> Any:
    """textual-image's renderables and widgets, imported without its terminal queries: it asks
    the terminal at import, which Textual, reading the terminal already, would answer instead."""
    if "textual_image.widget" in sys.modules:
        return sys.modules["textual_image.widget"]
    from textual_image import _terminal

    if not hasattr(_terminal.get_cell_size, "_result"):  # its own cache, filled here
        setattr(_terminal.get_cell_size, "_result", _terminal.CellSize(*_cell_pixels()))  # noqa: B010
    # Not a terminal while it is imported: it then picks no protocol by asking, and asks nothing.
    real, sys.__stdout__ = sys.__stdout__, io.StringIO()  # type: ignore[misc,assignment]
    try:
        import textual_image.widget
    finally:
        sys.__stdout__ = real  # type: ignore[misc]
    return textual_image.widget


def _cell_pixels() -> tuple[int, int]:
    """A cell's size in pixels from the terminal's window size (an ioctl, no reply to read)."""
    try:
        import fcntl
        import struct
        import termios

        packed = fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, bytes(8))  # type: ignore[union-attr]
        rows, cols, x_px, y_px = struct.unpack("HHHH", packed)
        if rows and cols and x_px and y_px:
            return x_px // cols, y_px // rows
    except (OSError, AttributeError, ValueError):
        pass
    return 10, 20


class DocumentView(Widget):
    """One page of a document, zoomed and panned; `show` gives it the page."""

    DEFAULT_CSS = """
    DocumentView {
        height: 1fr;
        width: 1fr;
        background: $surface;
        color: $foreground;
    }
    """

    view: reactive[View] = reactive(View, layout=False)
    """Zoom and centre; the widget draws again when it changes."""

    def __init__(self, *, mode: Mode | None = None, name: str | None = None) -> None:
        super().__init__(name=name, id="doc-view")
        self.mode: Mode = mode or graphics_mode()
        self.page: Image | None = None
        self._drawn: tuple[object, Any] | None = None

    def show(self, page: Image | None) -> None:
        self.page = page
        self.view = View()
        self.refresh()

    def zoom(self, steps: int) -> None:
        now = min(range(len(ZOOMS)), key=lambda n: abs(ZOOMS[n] - self.view.zoom))
        wanted = ZOOMS[max(0, min(len(ZOOMS) - 1, now + steps))]
        self.view = View(wanted, self.view.x, self.view.y)

    def pan(self, dx: int, dy: int) -> None:
        if self.page is None:
            return
        box, (x, y) = self._box()
        share_w = (box[2] - box[0]) / self.page.width
        share_h = (box[3] - box[1]) / self.page.height
        x, y = x + dx * PAN_STEP * share_w, y + dy * PAN_STEP * share_h
        # clamped as it is drawn: panning past the edge stops at the edge
        probe = View(self.view.zoom, x, y)
        _, (x, y) = self._box(probe)
        self.view = probe if (x, y) == (probe.x, probe.y) else View(self.view.zoom, x, y)

    def _target(self) -> tuple[int, int, float]:
        cols, rows = max(1, self.size.width), max(1, self.size.height)
        if self.mode == "console":
            return cols, rows, 2.0  # a cell is about twice as tall as wide: one pixel each
        return cols, rows * 2, 1.0  # half cells: square pixels

    def _box(
        self, view: View | None = None
    ) -> tuple[tuple[int, int, int, int], tuple[float, float]]:
        assert self.page is not None
        cols, rows, aspect = self._target()
        return view_box(self.page.width, self.page.height, cols, rows, view or self.view, aspect)

    def picture(self) -> Image | None:
        """What is on screen now, as pixels (None: no page)."""
        if self.page is None:
            return None
        cols, rows, _aspect = self._target()
        box, _ = self._box()
        return visible(self.page, box, (cols, rows))

    def render(self) -> RenderResult:
        key = (id(self.page), self.view, self.size.width, self.size.height)
        if self._drawn is not None and self._drawn[0] == key:
            return cast(
                "RenderResult", self._drawn[1]
            )  # the same view: the same renderable (TGP: no image resent)
        picture = self.picture()
        drawn: Any
        if picture is None:
            drawn = Text("")
        elif self.mode == "console":
            drawn = Text("\n".join(console_rows(picture)), no_wrap=True, end="")
        else:
            kit = _textual_image()
            make = kit.TGPImage._Renderable if self.mode == "tgp" else kit.HalfcellRenderable
            drawn = make(picture, width=self.size.width, height=self.size.height)
        if self._drawn is not None and hasattr(self._drawn[1], "cleanup"):
            self._drawn[1].cleanup()  # TGP: the terminal forgets the image no longer shown
        self._drawn = (key, drawn)
        return cast("RenderResult", drawn)
