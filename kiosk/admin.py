"""`kiosk admin`: the admin console as its own app, for an SSH session or a station's console.

It asks for an admin's badge + PIN first; the server refuses every admin route without the
session that opens.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from kiosk import themes
from kiosk.client import BackendError, ExecutionClient
from kiosk.config import StationSettings
from kiosk.screens.admin_console import AdminConsoleScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.wire import Credentials


class AdminApp(App[int], inherit_bindings=False):
    CSS_PATH = themes.STYLESHEET
    ENABLE_COMMAND_PALETTE = False
    TITLE = "Station kiosk admin"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True)
    ]

    def __init__(self, client: ExecutionClient) -> None:
        super().__init__()
        self.client = client
        for theme in themes.THEMES.values():
            self.register_theme(theme)
        self.theme = themes.DEFAULT_THEME

    def on_mount(self) -> None:
        self.ask_badge()

    def ask_badge(self, error: str = "") -> None:
        summary = "Admin console: stations, holds, NCRs, locked people, enrollment codes."
        if error:
            summary += f"\n✘ {error}"
        self.push_screen(SignOffScreen("Admin sign-in", summary, "approved"), self._signed)

    def _signed(self, creds: Credentials | None) -> None:
        if creds is None:
            self.exit(0)
            return
        self.open_console(creds)

    @work(exclusive=True)
    async def open_console(self, creds: Credentials) -> None:
        try:
            session = await self.client.admin_session(creds)
            station = await self.client.station()
        except BackendError as exc:
            self.ask_badge(exc.detail)
            return
        await self.push_screen(
            AdminConsoleScreen(self.client, session.token, session.admin.name, station)
        )

    async def on_unmount(self) -> None:
        await self.client.aclose()


def run_admin(settings: StationSettings) -> int:
    from kiosk.station import backend

    with backend(settings) as (url, token):
        app = AdminApp(ExecutionClient(url, token, timeout=settings.request_timeout))
        app.run()
        return app.return_code or 0
