"""What every full station screen shares: a typed handle on the app and a message line."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from kiosk.widgets.message_line import MessageLine, Severity

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class StationScreen(Screen[None]):
    @property
    def station(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def on_screen_resume(self) -> None:
        self.station.refresh_status()

    def say(self, text: str, severity: Severity = "info") -> None:
        for line in self.query(MessageLine):
            line.say(text, severity)
