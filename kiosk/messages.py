"""Messages between the station's app and its screens."""

from __future__ import annotations

import rich.repr
from textual.message import Message

from kiosk.scanning import ClassifiedScan


class Scanned(Message):
    """A complete scan, classified, posted to the screen on top (handled as `on_scanned`).

    A screen that has a use for it (a tool on the traveler's step, a badge in a sign-off prompt)
    handles it and stops it; otherwise it bubbles up to the app, which routes what means the same
    anywhere (a badge signs in, a traveler opens) and says why anything else has no use here.
    """

    def __init__(self, found: ClassifiedScan) -> None:
        super().__init__()
        self.found = found

    @property
    def kind(self) -> str:
        return self.found.kind

    @property
    def value(self) -> str:
        return self.found.value

    def __rich_repr__(self) -> rich.repr.Result:
        # A scan may be a badge number: never in a log (Textual's devtools log messages).
        yield "kind", self.kind
