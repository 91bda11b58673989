"""`kiosk board`: the live board as its own app, for an SSH session or a supervisor's screen.

It asks for the badge + PIN of a supervisor, quality or an admin first; the server refuses the
board without the session that opens.
"""

from __future__ import annotations

from kiosk.client import ExecutionClient
from kiosk.config import StationSettings
from kiosk.screens.board import BoardScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.signed_in_app import SignedInApp
from kiosk.wire import AdminSession


class BoardApp(SignedInApp):
    TITLE = "Station kiosk board"

    def on_mount(self) -> None:
        summary = "The live board: work in progress, holds, NCRs, help and stop requests."
        prompt = SignOffScreen("Board sign-in", summary, "approved", self.client.board_session)
        self.push_screen(prompt, self._opened)

    def _opened(self, session: AdminSession | None) -> None:
        if session is None:
            self.exit(0)
            return
        self.push_screen(BoardScreen(self.client, session.token, session.admin))


def run_board(settings: StationSettings) -> int:
    from kiosk.station import backend

    with backend(settings) as found:
        app = BoardApp(ExecutionClient(found.url, found.token, timeout=settings.request_timeout))
        app.run()
        return app.return_code or 0
