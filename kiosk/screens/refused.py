"""Actions the server refused after this station recorded them: kept, shown, and resolved only by a
supervisor's signature, either re-done (queued again under a new key) or dismissed.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from kiosk import rules
from kiosk.client.link import StationLink
from kiosk.client.outbox import Entry
from kiosk.screens.base import MessageScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.widgets.message_line import MessageLine
from kiosk.wire import Credentials, Person, Role

RESOLVE_ROLES = frozenset({Role.SUPERVISOR, Role.QUALITY})


class RefusedScreen(MessageScreen):
    BINDINGS = [
        Binding("f2", "redo", "Re-do (supervisor)"),
        Binding("f8", "dismiss_entry", "Dismiss (supervisor)"),
        Binding("escape", "close", "Back"),
    ]

    DEFAULT_CSS = """
    RefusedScreen {
        & .heading { background: $error; color: $background; text-style: bold; padding: 0 1; }
        & DataTable { height: 1fr; }
    }
    """

    def __init__(self, link: StationLink) -> None:
        super().__init__()
        self.link = link
        self.entries: list[Entry] = []

    def compose(self) -> ComposeResult:
        yield Static(
            "Refused by the server: kept until a supervisor re-does or dismisses them",
            classes="heading",
        )
        table: DataTable[str] = DataTable(id="refused", cursor_type="row")
        table.add_columns("#", "Traveler", "Action", "By", "Recorded", "Why")
        yield table
        yield MessageLine(id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.entries = self.link.refused()
        table = self.query_one(DataTable)
        table.clear()
        for e in self.entries:
            table.add_row(
                str(e.seq), e.traveler, e.kind.replace("_", " "), e.by,
                f"{e.recorded_at:%Y-%m-%d %H:%M}", e.message or "-", key=str(e.seq),
            )  # fmt: skip
        if not self.entries:
            self.say("Nothing refused: every recorded action reached the server.", "ok")

    def _selected(self) -> Entry | None:
        if not self.entries:
            return None
        return self.entries[min(self.query_one(DataTable).cursor_row, len(self.entries) - 1)]

    def action_redo(self) -> None:
        self._resolve("redo")

    def action_dismiss_entry(self) -> None:
        self._resolve("dismiss")

    def _resolve(self, how: str) -> None:
        entry = self._selected()
        if entry is None:
            return
        verb = "Re-do" if how == "redo" else "Dismiss"

        def signed(supervisor: Person | None) -> None:
            if supervisor is not None:
                self._resolved(entry, how, supervisor)

        summary = f"{entry.summary}\nRefused: {entry.message}"
        prompt = SignOffScreen(f"{verb} a refused action", summary, "approved", self._supervisor)
        self.app.push_screen(prompt, signed)

    async def _supervisor(self, creds: Credentials) -> Person:
        """Badge + PIN of someone who may resolve refusals (the prompt says why not otherwise)."""
        proof = await self.link.identify(creds)
        rules.require_role(proof.signer, RESOLVE_ROLES, "resolve a refused action")
        return proof.signer

    def _resolved(self, entry: Entry, how: str, supervisor: Person) -> None:
        if how == "redo":
            fresh = self.link.outbox.redo(entry.seq, supervisor.name)
            self.link.sender.nudge()
            self.say(f"#{entry.seq} queued again as #{fresh.seq} by {supervisor.name}.", "ok")
        else:
            self.link.outbox.dismiss(entry.seq, supervisor.name)
            self.say(f"#{entry.seq} dismissed by {supervisor.name}.", "ok")
        self.reload()

    def action_close(self) -> None:
        self.app.pop_screen()
