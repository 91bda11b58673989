"""`kiosk admin`: the admin console as its own app, for an SSH session or a station's console.

It asks for an admin's badge + PIN first; the server refuses every admin route without the
session that opens.
"""

from __future__ import annotations

from kiosk.client import ExecutionClient
from kiosk.config import StationSettings
from kiosk.screens.admin_console import AdminConsoleScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.signed_in_app import SignedInApp
from kiosk.wire import AdminSession, Credentials, StationInfo


class AdminApp(SignedInApp):
    TITLE = "Station kiosk admin"

    def on_mount(self) -> None:
        summary = "Admin console: stations, holds, NCRs, locked people, enrollment codes."
        self.push_screen(
            SignOffScreen("Admin sign-in", summary, "approved", self._sign_in), self._opened
        )

    async def _sign_in(self, creds: Credentials) -> tuple[AdminSession, StationInfo]:
        return await self.client.admin_session(creds), await self.client.station()

    def _opened(self, signed_in: tuple[AdminSession, StationInfo] | None) -> None:
        if signed_in is None:
            self.exit(0)
            return
        session, station = signed_in
        self.push_screen(
            AdminConsoleScreen(self.client, session.token, session.admin.name, station)
        )


def run_admin(settings: StationSettings) -> int:
    from kiosk.station import backend

    with backend(settings) as found:
        app = AdminApp(ExecutionClient(found.url, found.token, timeout=settings.request_timeout))
        app.run()
        return app.return_code or 0
