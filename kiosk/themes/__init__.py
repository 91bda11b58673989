"""The station themes. A station's theme comes from its server-side config, so every station of a
plant draws the same colours; this module is the only place where colours are spelled out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from textual.theme import Theme

from kiosk.themes.console import on_linux_console

THEME_DIR = Path(__file__).parent
STYLESHEET = THEME_DIR / "kiosk.tcss"

DEFAULT_THEME = "kiosk-dark"
CONSOLE_THEME = "kiosk-console"

THEMES: dict[str, Theme] = {
    theme.name: theme
    for theme in (
        Theme(
            name="kiosk-dark",
            primary="#2F7FD0",
            secondary="#5AA9E6",
            accent="#F2A541",
            warning="#F2C14E",
            error="#E5484D",
            success="#3FB950",
            foreground="#E6EDF3",
            background="#10151C",
            surface="#18202A",
            panel="#223041",
            dark=True,
        ),
        # Black on white with saturated signals, for glare and weak eyes.
        Theme(
            name="kiosk-high-contrast",
            primary="#0033AA",
            secondary="#000000",
            accent="#7A3E00",
            warning="#8A5A00",
            error="#B00020",
            success="#006B21",
            foreground="#000000",
            background="#FFFFFF",
            surface="#FFFFFF",
            panel="#E0E0E0",
            dark=False,
        ),
        # The Linux framebuffer console (TERM=linux) shows only the 8 base ANSI colours well:
        # no bright variants, no blending; meaning is always carried by text as well.
        Theme(
            name=CONSOLE_THEME,
            ansi=True,
            primary="ansi_blue",
            secondary="ansi_cyan",
            accent="ansi_yellow",
            warning="ansi_yellow",
            error="ansi_red",
            success="ansi_green",
            foreground="ansi_default",
            background="ansi_default",
            surface="ansi_default",
            panel="ansi_default",
            boost="ansi_default",
            dark=True,
            variables={
                "ansi-background": "ansi_black",
                "ansi-foreground": "ansi_white",
                "border-blurred": "ansi_black",
                "block-cursor-foreground": "ansi_black",
                "block-cursor-background": "ansi_white",
                "input-cursor-background": "ansi_white",
                "input-cursor-foreground": "ansi_black",
                "input-cursor-text-style": "none",
                "input-selection-background": "ansi_blue",
                "input-selection-foreground": "ansi_white",
                "screen-selection-background": "ansi_blue",
                "screen-selection-foreground": "ansi_white",
                "footer-key-foreground": "ansi_yellow",
            },
        ),
    )
}


def resolve(name: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The registered theme for `name`, falling back to the default for unknown names.

    On the Linux console (TERM=linux) a theme of 24-bit colours turns to mud, its shades mapped
    onto 8: there the console theme is used, unless the server's config names a theme made for
    8 colours (an ANSI theme) already.
    """
    chosen = name if name in THEMES else DEFAULT_THEME
    if on_linux_console(environ) and not THEMES[chosen].ansi:
        return CONSOLE_THEME
    return chosen
