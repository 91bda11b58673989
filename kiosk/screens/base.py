"""What full screens share: a message line to speak through, and for station screens a typed
handle on the app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from kiosk.widgets.message_line import MessageLine, Severity

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class MessageScreen(Screen[None]):
    """A full screen with a `MessageLine`: results and refusals are said there, in words."""

    def say(self, text: str, severity: Severity = "info") -> None:
        for line in self.query(MessageLine):
            line.say(text, severity)


def tabbed_tables(
    above: Sequence[Widget], tabs: Sequence[tuple[str, str]], columns: Mapping[str, Sequence[str]]
) -> ComposeResult:
    """What stands `above` (a heading), a tab of rows for each (table id, title), the message
    line and the footer: the admin console and the board, one layout."""
    yield from above
    with TabbedContent():
        for key, title in tabs:
            with TabPane(title, id=f"tab-{key}"):
                table: DataTable[str] = DataTable(id=key, cursor_type="row")
                table.add_columns(*columns[key])
                yield table
    yield MessageLine(id="message")
    yield Footer()


class StationScreen(MessageScreen):
    @property
    def station(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def on_screen_resume(self) -> None:
        self.station.refresh_status()
