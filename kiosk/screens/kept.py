"""A station screen kept and shown again, rather than composed anew each time."""

from __future__ import annotations

from textual import events

from kiosk.screens.base import StationScreen


class KeptScreen(StationScreen):
    """Shown again without restyling every widget in it.

    Textual restyles a whole screen each time it comes to the top of the stack. A kept screen
    (the traveler screen, pushed again for every scan; the queue, after every traveler) is
    already styled: widgets changed while it was hidden restyle themselves. Only when the app's
    CSS changed since (a theme: Textual counts those changes) is it restyled. That restyle was
    the largest cost left in scan -> painted (scripts/bench_interaction.py).
    """

    _styled_at: int | None = None
    """The app's CSS version (`App._css_update_count`) when this screen was last styled."""

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Runs before Screen's own handler, which restyles only when asked to.
        version = self.app._css_update_count
        if self._styled_at == version:
            event.refresh_styles = False
        self._styled_at = version
