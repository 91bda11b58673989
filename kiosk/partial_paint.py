"""Paint a changed field without re-rendering every widget beside it: a fix to Textual's compositor.

When one widget changes (a key typed into a value field), Textual's compositor repaints only the
changed cells, but first renders every widget whose *clip* (its container's area) touches them:
on a traveler screen that is 23 widgets, the status bar and key footer included, at about 70 µs
each even from cache, 2-3 ms a key. Most of them cannot draw a single cell of the change. This
keeps Textual's method and narrows one test: a widget is rendered when its own visible area
(region inside its clip) touches the change. What reaches the terminal is the same: only cells
inside the change are written, and only a widget that covers them can be the one drawn there
(tests/test_partial_paint.py compares both ways on the station's screens).

Installed by the station's apps before their first frame. Written against Textual 8.2.8, which
pyproject.toml pins exactly. It replaces Textual's method only while that method is still the one
read (where it starts in its file and the names it uses): on any other Textual it leaves it alone,
and tests/test_partial_paint.py fails, so an upgrade re-checks this. (Not `textual.__version__`:
that reads the package metadata, 8 ms on the station's start.)
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip

_textual_renders = Compositor._get_renders

READ = (
    1031,
    ("Region", "visible_widgets", "overlaps", "items", "intersection", "contains_region",
     "render_lines", "width", "height", "x", "y"),
)  # fmt: skip
"""Textual 8.2.8's `Compositor._get_renders`, as read: its first line and the names it uses."""


def _as_read() -> bool:
    code = _textual_renders.__code__
    return (code.co_firstlineno, code.co_names) == READ


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
    if not _as_read():
        return False
    Compositor._get_renders = _get_renders  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Textual's own method again (the test compares both)."""
    Compositor._get_renders = _textual_renders  # type: ignore[method-assign]
