"""Scannable hand-off: the traveler's own number as a QR code (segno) and as Code 128
(python-barcode), drawn with block characters so a handheld can read it off the screen.

The codes carry the traveler number alone, as its printed label does (kiosk/labels.py), so the
handheld's scan routes as a traveler everywhere. Block characters: in a terminal emulator a QR
module is half a character cell high (▀ ▄ █) and a Code 128 module half a cell wide (▌ ▐ █).
The Linux console's fonts have no half blocks (tests/test_console_glyphs.py reads them), so there
every module is whole cells of █: a QR module two cells wide and one high (square in an 8x16
font), a Code 128 module one cell. That needs a console of 136 columns for the Code 128 or 33
lines for the QR code (a framebuffer console at 1024x768 or more); on a smaller one the screen
says so and names the printed label instead of drawing a code no scanner could read.
Dark on light, whatever the theme: scanners read a code drawn light on dark badly or not at all.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from kiosk.screens.dialog import dialog_css
from kiosk.themes.console import on_linux_console

QUIET_QR = 4
"""Modules of light margin around a QR code (ISO/IEC 18004 asks for 4)."""
QUIET_CODE128 = 10
"""Modules of light margin each side of a Code 128 (ISO/IEC 15417 asks for 10)."""
CODE128_LINES = 5
DIALOG_WIDTH = 76

_HALVES = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}


def qr_rows(text: str, border: int = QUIET_QR, *, whole_cells: bool = False) -> list[str]:
    """The QR code of `text` with `border` light modules around it, dark modules as ink: two
    module rows per line, or with `whole_cells` one module row per line and two cells a module."""
    import segno  # loaded when a code is shown, not at the station's start

    matrix = [list(row) for row in segno.make(text, micro=False).matrix_iter(border=border)]
    if whole_cells:
        return ["".join("██" if dark else "  " for dark in row) for row in matrix]
    if len(matrix) % 2:
        matrix.append([0] * len(matrix[0]))
    return [
        "".join(_HALVES[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(matrix[::2], matrix[1::2], strict=True)
    ]


def code128_modules(text: str) -> str:
    """Code 128 of `text` as modules, '1' a bar, with the quiet zones."""
    from barcode.codex import Code128

    quiet = "0" * QUIET_CODE128
    return quiet + str(Code128(text).build()[0]) + quiet


def code128_rows(
    text: str, lines: int = CODE128_LINES, *, whole_cells: bool = False
) -> list[str]:
    """Code 128 of `text`, `lines` lines high: two modules per character, or with `whole_cells`
    one."""
    modules = code128_modules(text)
    if whole_cells:
        return ["".join("█" if bar == "1" else " " for bar in modules)] * lines
    if len(modules) % 2:
        modules += "0"
    pairs = {("0", "0"): " ", ("1", "0"): "▌", ("0", "1"): "▐", ("1", "1"): "█"}
    row = "".join(pairs[(modules[n], modules[n + 1])] for n in range(0, len(modules), 2))
    return [row] * lines


class HandoffScreen(ModalScreen[None]):
    """The traveler's QR code or Code 128, large enough for a handheld; Tab switches."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "switch", "QR / Code 128"),
        Binding("escape,enter", "close", "Close"),
    ]
    """
    | Key | Does |
    | :- | :- |
    | tab | Switch between the QR code and the Code 128. |
    | escape, enter | Close. |
    """

    DEFAULT_CSS = dialog_css(
        "HandoffScreen",
        width=DIALOG_WIDTH,
        extra="""
        & #code { width: auto; height: auto; color: black; background: white; }
        & #code-box { align-horizontal: center; height: auto; }
        """,
    )

    def __init__(self, traveler: str, *, code128_first: bool | None = None) -> None:
        super().__init__()
        self.traveler = traveler
        self.whole_cells = on_linux_console()
        self.showing_qr = not (self.whole_cells if code128_first is None else code128_first)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Hand-off: {self.traveler}", classes="heading", markup=False)
            with Vertical(id="code-box"):
                yield Static(id="code", markup=False)
            yield Static(id="caption", markup=False)

    def on_mount(self) -> None:
        self._draw()

    def _rows(self, qr: bool) -> list[str]:
        if qr:
            return qr_rows(self.traveler, whole_cells=self.whole_cells)
        return code128_rows(self.traveler, whole_cells=self.whole_cells)

    def _fits(self, rows: list[str]) -> bool:
        # Border and padding beside the code; border, heading and caption above and below it.
        return len(rows[0]) + 4 <= self.app.size.width and len(rows) + 4 <= self.app.size.height

    def _draw(self) -> None:
        rows = self._rows(self.showing_qr)
        if not self._fits(rows) and self._fits(other := self._rows(not self.showing_qr)):
            self.showing_qr, rows = not self.showing_qr, other
        kind = "QR code" if self.showing_qr else "Code 128"
        switch = f"Tab: {'Code 128' if self.showing_qr else 'QR code'} · Esc: close."
        code, caption = self.query_one("#code", Static), self.query_one("#caption", Static)
        if self._fits(rows):
            self.query_one(Vertical).styles.width = max(DIALOG_WIDTH, len(rows[0]) + 4)
            code.display = True
            code.update(Text("\n".join(rows), no_wrap=True))
            caption.update(f"{kind} of {self.traveler}: scan it with the handheld. {switch}")
            return
        code.display = False
        width, height = self.app.size
        caption.update(
            f"This screen ({width}x{height}) is too small to draw a code a handheld can read "
            f"(the {kind} needs {len(rows[0]) + 4}x{len(rows) + 4}). Scan {self.traveler} "
            f"from its printed label instead. {switch}"
        )

    def action_switch(self) -> None:
        self.showing_qr = not self.showing_qr
        self._draw()

    def action_close(self) -> None:
        self.dismiss(None)
