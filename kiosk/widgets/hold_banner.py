"""The hold banner: a traveler on hold says so across the screen, with the reason."""

from __future__ import annotations

from textual.widgets import Static

from kiosk.wire import Hold


class HoldBanner(Static):
    DEFAULT_CSS = """
    HoldBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error;
        color: $background;
        text-style: bold;
        &.-on-hold { display: block; }
    }
    """

    def show_hold(self, hold: Hold | None) -> None:
        self.set_class(hold is not None, "-on-hold")
        if hold is None:
            self.update("")
            return
        ncr = f" [{hold.ncr_number}]" if hold.ncr_number else ""
        self.update(
            f"■ ON HOLD{ncr}: {hold.reason} (placed by {hold.placed_by}). No work until released."
        )
