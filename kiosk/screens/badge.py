"""The badge screen: the station waits here for a person; after an idle lock, too."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.widgets import Footer, Input, Static

from kiosk.screens.base import StationScreen
from kiosk.widgets.message_line import MessageLine
from kiosk.widgets.status_bar import StatusBar


class BadgeScreen(StationScreen):
    """Scan a badge (or type the number where the station allows it) to sign in."""

    DEFAULT_CSS = """
    BadgeScreen {
        & #badge-area { height: 1fr; align: center middle; }
        & Vertical { width: 60; max-width: 100%; height: auto; border: double $primary; padding: 1 2; }
        & .prompt { text-style: bold; content-align: center middle; width: 100%; }
        & Input { margin: 1 0; }
    }
    """

    def __init__(self, *, locked_for: str | None = None, allow_typed: bool = True) -> None:
        super().__init__()
        self.locked_for = locked_for
        self.allow_typed = allow_typed

    def compose(self) -> ComposeResult:
        with Container(id="badge-area"), Vertical():
            if self.locked_for:
                yield Static(
                    f"Station locked. {self.locked_for}: scan your badge to continue "
                    "where you were. Anyone else: your badge signs them out.",
                    classes="prompt",
                    markup=False,
                )
            else:
                yield Static("Scan your badge to sign in", classes="prompt")
            entry = Input(
                password=True, id="badge", placeholder="badge number", disabled=not self.allow_typed
            )
            entry.cursor_blink = False
            yield entry
            yield MessageLine(id="message")
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#badge", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        badge = event.value.strip()
        event.input.value = ""
        if badge:
            self.station.badge_in(badge)
