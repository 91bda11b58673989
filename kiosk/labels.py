"""Code 128 labels for travelers, badges, tools and material lots: SVG, PNG or Zebra ZPL.

A label is only useful if a station's scanner routes it to the right place, so every code is
checked with the same `classify` the station uses before anything is drawn: a label that says
"traveler" always scans as a traveler.

No server access: a label carries the code and, if given, a caption; nothing is looked up.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from kiosk.scanning import ScanKind, classify

LabelKind = Literal["traveler", "badge", "tool", "lot"]
LabelFormat = Literal["svg", "png", "zpl"]

KINDS: Final[tuple[LabelKind, ...]] = ("traveler", "badge", "tool", "lot")
FORMATS: Final[tuple[LabelFormat, ...]] = ("svg", "png", "zpl")

# What the station's scanner routing must call each label kind.
SCAN_KIND: Final[dict[LabelKind, ScanKind]] = {
    "traveler": "traveler",
    "badge": "badge",
    "tool": "tool",
    "lot": "material",
}
EXAMPLES: Final[dict[LabelKind, str]] = {
    "traveler": "TRV-1001",
    "badge": "10001",
    "tool": "TL-0001",
    "lot": "LOT-A100",
}

# 0.33 mm (13 mil) bars read well with the cheap handheld scanners of a shop floor; Code 128
# needs a quiet zone of ten modules on each side.
MODULE_MM: Final = 0.33
BAR_HEIGHT_MM: Final = 15.0
QUIET_ZONE_MM: Final = 10 * MODULE_MM
# PNG at 300 dpi with bars exactly 4 pixels wide, so no bar is rounded thinner than another.
PNG_DPI: Final = 300
PNG_MODULE_PX: Final = 4
PNG_MODULE_MM: Final = PNG_MODULE_PX * 25.4 / PNG_DPI

# ZPL for a 203 dpi Zebra: 2-dot modules (0.25 mm), a 4-inch-wide label.
ZPL_MODULE_DOTS: Final = 2
ZPL_LABEL_WIDTH_DOTS: Final = 812
ZPL_BAR_HEIGHT_DOTS: Final = 100
ZPL_LEFT: Final = 40
# Characters that start ZPL commands (^ ~) or are the ^FH escape itself (_) must be hex-escaped.
_ZPL_SPECIAL: Final = frozenset("^~_")


class LabelError(Exception):
    """The label cannot be made or printed; the message says what to do instead."""


@dataclass(frozen=True)
class Label:
    kind: LabelKind
    code: str
    """Exactly what the bars encode, i.e. what a scanner will type."""
    caption: str = ""

    @property
    def text_lines(self) -> tuple[str, ...]:
        """Human-readable lines under the bars: the code itself, then the caption."""
        return (self.code, self.caption) if self.caption else (self.code,)


def make_label(kind: LabelKind, code: str, caption: str | None = None) -> Label:
    """Normalize `code` as the station would and refuse it if it would scan as something else."""
    text = code.strip()
    # Badge ids are kept as typed (hex chip UIDs may be lower case); the plant's own codes are
    # upper case, as the server stores them.
    if kind != "badge":
        text = text.upper()
    if not text.isascii() or not text.isprintable():
        raise LabelError(f"{code!r}: a Code 128 label takes printable ASCII characters only")
    scanned = classify(text)
    if scanned.kind != SCAN_KIND[kind]:
        raise LabelError(
            f"{text!r} would not scan as a {kind} "
            f"(the station would read it as {scanned.kind}); "
            f"a {kind} code looks like {EXAMPLES[kind]}"
        )
    clean_caption = " ".join((caption or "").split())  # one line: labels have no room to wrap
    return Label(kind, text, clean_caption)


# --- rendering ----------------------------------------------------------------------------------


def render(label: Label, fmt: LabelFormat) -> bytes:
    if fmt == "svg":
        return render_svg(label)
    if fmt == "png":
        return render_png(label)
    return render_zpl(label).encode()


def _code128(code: str, writer: object) -> Any:
    from barcode.codex import Code128

    return Code128(code, writer=writer)


def _options(module_mm: float) -> dict[str, object]:
    return {
        "module_width": module_mm,
        "module_height": BAR_HEIGHT_MM,
        "quiet_zone": 10 * module_mm,
        "font_size": 10,
        "text_distance": 4.0,
    }


def render_svg(label: Label) -> bytes:
    from barcode.writer import SVGWriter

    symbol = _code128(label.code, SVGWriter())
    data: bytes = symbol.render(_options(MODULE_MM), "\n".join(label.text_lines))
    return data


def render_png(label: Label) -> bytes:
    from barcode.writer import ImageWriter

    # python-barcode defines ImageWriter as None when Pillow is missing.
    if ImageWriter is None:
        raise LabelError(
            "PNG labels need Pillow: pip install Pillow (or use --format svg or --format zpl)"
        )
    symbol = _code128(label.code, ImageWriter(format="PNG", dpi=PNG_DPI))
    out = io.BytesIO()
    symbol.write(out, _options(PNG_MODULE_MM), "\n".join(label.text_lines))
    return out.getvalue()


def render_zpl(label: Label) -> str:
    """ZPL II: Code 128 in automatic subset mode (^BC…,A) so ^FD holds the code exactly."""
    text_top = 30 + ZPL_BAR_HEIGHT_DOTS + 20
    lines = [
        "^XA",
        "^CI28",  # UTF-8 field data, for captions with accents
        f"^PW{ZPL_LABEL_WIDTH_DOTS}",
        "^LH0,0",
        f"^FO{ZPL_LEFT},30^BY{ZPL_MODULE_DOTS}"
        f"^BCN,{ZPL_BAR_HEIGHT_DOTS},N,N,N,A{_zpl_field(label.code)}",
        f"^FO{ZPL_LEFT},{text_top}^A0N,40,40{_zpl_field(label.code)}",
    ]
    if label.caption:
        lines.append(f"^FO{ZPL_LEFT},{text_top + 50}^A0N,30,30{_zpl_field(label.caption)}")
    lines.append("^XZ")
    return "\n".join(lines) + "\n"


def _zpl_field(text: str) -> str:
    """^FD…^FS, hex-escaped with ^FH when the text holds a character ZPL would take as a command."""
    if not any(c in _ZPL_SPECIAL or ord(c) < 0x20 for c in text):
        return f"^FD{text}^FS"
    escaped = "".join(
        "".join(f"_{b:02X}" for b in c.encode()) if c in _ZPL_SPECIAL or ord(c) < 0x20 else c
        for c in text
    )
    return f"^FH_^FD{escaped}^FS"


# --- files and printers -------------------------------------------------------------------------


def default_output(label: Label, fmt: LabelFormat) -> Path:
    """`<code>.<ext>` in the current directory, with characters unsafe in file names replaced."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", label.code)
    return Path(f"{stem}.{fmt}")


def lp_command(fmt: LabelFormat, printer: str | None = None) -> list[str]:
    """The `lp` call for one label; fails before anything is drawn when `lp` is missing."""
    lp = shutil.which("lp")
    if lp is None:
        raise LabelError(
            "printing needs the CUPS client `lp`: apt-get install cups-client "
            "(or write the label to a file and print it yourself)"
        )
    if fmt == "svg":
        raise LabelError(
            "printers do not take SVG: use --format zpl for a Zebra printer or --format png"
        )
    command = [lp, "-s"]  # -s: no "request id is…" chatter
    if printer:
        command += ["-d", printer]
    if fmt == "zpl":
        command += ["-o", "raw"]  # ZPL must reach the printer untouched by CUPS filters
    return command


def send_to_printer(command: list[str], data: bytes) -> None:
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabelError(f"lp failed: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        raise LabelError(f"lp refused the label: {reason}")
