"""The status bar: station, person, backend state, actions waiting, config version and time."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class StatusBar(Widget):
    """One line at the bottom of every screen; always says where you are and who is signed in."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
        &.-offline { background: $error; color: $background; }
    }
    """

    station: reactive[str] = reactive("")
    """Station name and work center."""
    person: reactive[str] = reactive("nobody signed in")
    """Who is signed in, with their role."""
    online: reactive[bool | None] = reactive(None)
    """Backend reachable (True), unreachable (False), not known yet (None)."""
    waiting: reactive[int] = reactive(0)
    """Actions recorded on this station and not yet confirmed by the server."""
    config_version: reactive[int | None] = reactive(None)
    """Version of the station's server-side config."""
    clock: reactive[str] = reactive("")
    """Wall-clock time shown at the right."""

    def watch_online(self, online: bool | None) -> None:
        self.set_class(online is False, "-offline")

    def render(self) -> Text:
        if self.online is None:
            backend = "… connecting"
        else:
            backend = "● ONLINE" if self.online else "✘ OFFLINE"
        config = "" if self.config_version is None else f" │ cfg v{self.config_version}"
        left = f" {self.station} │ {self.person} │ {backend} │ {self.waiting} waiting{config}"
        width = self.size.width or 80
        right = f" {self.clock} "
        room = max(0, width - len(right))
        if len(left) > room:  # the clock stays; the left part gives way
            left = left[: max(0, room - 1)] + "…"
        return Text(left.ljust(room) + right, no_wrap=True)
