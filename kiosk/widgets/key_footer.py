"""The footer of keys, drawn again only when the keys it shows change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen

Shown = tuple[tuple[str, str, bool], ...]


class KeyFooter(Footer):
    """Textual's Footer, minus the rebuild when nothing it shows changed.

    Footer composes its keys anew whenever the screen's bindings are updated: on every focus
    change and every time its screen comes back to the top. On the traveler and queue screens
    that rebuild (new widgets, styled) was a good part of scan -> painted, for the same keys.
    """

    def __init__(self, *, compact: bool = False) -> None:
        super().__init__(compact=compact)
        self._drawn: Shown | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = tuple(
            (binding.key, binding.description, enabled)
            for (_node, binding, enabled, _tip) in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._drawn:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._drawn = shown  # only what Footer will draw now counts as drawn
        super().bindings_changed(screen)
