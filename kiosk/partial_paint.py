"""Paint a changed field without re-rendering every widget beside it: a fix to Textual's compositor.

When one widget changes (a key typed into a value field), Textual's compositor repaints only the
changed cells, but first renders every widget whose *clip* (its container's area) touches them:
on a traveler screen that is 23 widgets, the status bar and key footer included, at about 70 µs
each even from cache, 2-3 ms a key. Most of them cannot draw a single cell of the change. This
keeps Textual's method and narrows one test: a widget is rendered when its own visible area
(region inside its clip) touches the change. What reaches the terminal is the same: only cells
inside the change are written, and only a widget that covers them can be the one drawn there
(tests/test_partial_paint.py compares both ways on the station's screens).

Installed by the station's apps before their first frame. Written against the Textual the locks
pin; on any other version it leaves Textual alone and `install` says so (the test of it fails,
so an upgrade re-checks this against Textual's new compositor).
"""

from __future__ import annotations

from collections.abc import Iterable

import textual
from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip

CHECKED_AGAINST = "8.2.8"
"""The Textual whose `Compositor._get_renders` this replaces, read line by line."""

_textual_renders = Compositor._get_renders


def _get_renders(
    self: Compositor, crop: Region | None = None
) -> Iterable[tuple[Region, Region, list[Strip]]]:
    """Textual's `_get_renders`, skipping widgets whose visible area misses `crop`."""
    for widget, (region, clip) in self.visible_widgets.items():
        visible = region.intersection(clip)
        if crop is not None and not crop.overlaps(visible):
            continue
        x, y, width, height = visible
        if width and height:
            yield region, clip, widget.render_lines(Region(x - region.x, y - region.y, width, height))


def install() -> bool:
    """Narrow the compositor's test; False (and Textual left as it is) on an unchecked version."""
    if textual.__version__ != CHECKED_AGAINST:
        return False
    Compositor._get_renders = _get_renders  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Textual's own method again (the test compares both)."""
    Compositor._get_renders = _textual_renders  # type: ignore[method-assign]
