"""What `kiosk admin` and `kiosk board` share: an app of its own that a person signs in to first,
for an SSH session or a station's console, in the plant's themes from the first frame."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from kiosk import partial_paint, themes
from kiosk.client import ExecutionClient


class SignedInApp(App[int], inherit_bindings=False):
    CSS_PATH = themes.STYLESHEET
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True)
    ]

    def __init__(self, client: ExecutionClient) -> None:
        super().__init__()
        partial_paint.install()
        self.client = client
        for theme in themes.THEMES.values():
            self.register_theme(theme)
        self.theme = themes.resolve(None)  # the console theme on TERM=linux, from the first frame

    async def on_unmount(self) -> None:
        await self.client.aclose()
