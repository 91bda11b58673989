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
    enrolled: reactive[bool] = reactive(True)
    """False once the server refused this station's token: shown instead of ONLINE/OFFLINE."""
    waiting: reactive[int] = reactive(0)
    """Actions recorded on this station and not yet confirmed by the server."""
    refused: reactive[int] = reactive(0)
    """Actions the server refused, kept for a supervisor (F9)."""
    config_version: reactive[int | None] = reactive(None)
    """Version of the station's server-side config."""
    clock: reactive[str] = reactive("")
    """Wall-clock time shown at the right."""

    def on_mount(self) -> None:
        # The app's connection status is the one value; every bar follows it (a bar on a
        # screen pushed later starts from it too).
        if hasattr(type(self.app), "online"):
            self.watch(self.app, "online", self._follow, init=True)

    def _follow(self, online: bool | None) -> None:
        self.online = online

    def watch_online(self, online: bool | None) -> None:
        self.set_class(online is False, "-offline")

    def render(self) -> Text:
        if not self.enrolled:
            backend = "✘ NOT ENROLLED"
        elif self.online is None:
            backend = "… connecting"
        else:
            backend = "● ONLINE" if self.online else "✘ OFFLINE"
        fixed = f" │ {backend} │ {self.waiting} waiting"
        if self.refused:
            fixed += f" │ ! {self.refused} refused (F9)"
        if self.config_version is not None:
            fixed += f" │ cfg v{self.config_version}"
        fixed += f" │ {self.clock} "
        # Backend state, queue, refusals and time always show; station and person give way.
        room = max(8, (self.size.width or 80) - len(fixed) - 1)
        person = _fit(self.person, room - min(len(self.station), 10) - 3)
        station = _fit(self.station, room - len(person) - 3)
        left = f" {station} │ {person}"
        return Text(left.ljust(room + 1) + fixed, no_wrap=True, overflow="ellipsis")


def _fit(text: str, width: int) -> str:
    width = max(1, width)
    return text if len(text) <= width else text[: width - 1] + "…"
