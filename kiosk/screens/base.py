"""What full screens share: a message line to speak through, and for station screens a typed
handle on the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from kiosk.widgets.message_line import MessageLine, Severity

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class MessageScreen(Screen[None]):
    """A full screen with a `MessageLine`: results and refusals are said there, in words."""

    def say(self, text: str, severity: Severity = "info") -> None:
        for line in self.query(MessageLine):
            line.say(text, severity)


class StationScreen(MessageScreen):
    @property
    def station(self) -> KioskApp:
        return cast("KioskApp", self.app)

    def on_screen_resume(self) -> None:
        self.station.refresh_status()
