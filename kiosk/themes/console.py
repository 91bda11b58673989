"""The Linux console (TERM=linux): 8 colours, and a font of 256 or 512 glyphs.

Debian's console fonts (console-setup's Lat15, Uni2 and Uni3, /usr/share/consolefonts) have most
marks the station draws (✘ • · ▶ ■ ● … │ → ±) but not ✔, ✍ or ℹ, and Lat15 and Uni3 lack ‖: the
console draws a blank box for each, and a completed step looks like nothing at all. There each
is drawn as a mark the fonts do have; tests/test_console_glyphs.py reads the fonts to check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

CONSOLE_FALLBACKS: dict[str, str] = {
    "✔": "☑",  # the fonts map ☑ to a tick
    "✍": "»",
    "ℹ": "ⓘ",
    "‖": "║",
    "▀": "█",  # a colour thumbnail's half block: the console draws one shade per cell instead
}
_TABLE = str.maketrans(CONSOLE_FALLBACKS)
HALF_BLOCKS = frozenset("▀▄▌▐")
"""Marks with no fallback, drawn only off the console: a screen that uses them (bar codes,
pictures) draws with whole cells on the Linux console instead, and says how."""


def on_linux_console(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process draws on the kernel's console (read when asked: tests change it)."""
    return (os.environ if environ is None else environ).get("TERM") == "linux"


def shown(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with each mark the console fonts lack replaced, on the Linux console only."""
    return text.translate(_TABLE) if on_linux_console(environ) else text
