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

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's keyword for every widget
        classes: str | None = None,
    ) -> None:
        # The reason is typed text: as markup, the "[NCR-0001]" tag of an NCR hold vanished.
        super().__init__(markup=False, name=name, id=id, classes=classes)

    def show_hold(self, hold: Hold | None) -> None:
        self.set_class(hold is not None, "-on-hold")
        if hold is None:
            self.update("")
            return
        ncr = f" [{hold.ncr_number}]" if hold.ncr_number else ""
        self.update(
            f"■ ON HOLD{ncr}: {hold.reason} (placed by {hold.placed_by}). No work until released."
        )
