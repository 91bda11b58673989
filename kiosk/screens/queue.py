"""The work queue: travelers ready at this station's work center, opened by scan or by Enter."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from kiosk.client import BackendError
from kiosk.screens.base import StationScreen
from kiosk.widgets.message_line import MessageLine
from kiosk.widgets.status_bar import StatusBar
from kiosk.wire import TravelerStatus, TravelerSummary

STATUS_WORDS: dict[TravelerStatus, str] = {
    TravelerStatus.NOT_STARTED: "· not started",
    TravelerStatus.IN_WORK: "▶ in work",
    TravelerStatus.ON_HOLD: "■ ON HOLD",
    TravelerStatus.COMPLETE: "✔ complete",
}


class QueueScreen(StationScreen):
    BINDINGS = [
        Binding("f4", "refresh", "Refresh"),
        Binding("f10", "app.sign_out", "Sign out"),
    ]

    DEFAULT_CSS = """
    QueueScreen {
        & .heading { text-style: bold; padding: 0 1; background: $primary; color: $foreground; }
        & DataTable { height: 1fr; }
        & Input { margin: 0 1; width: 40; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(
            "Work queue: scan a traveler, or choose one and press Enter", classes="heading"
        )
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=False, id="queue")
        table.add_columns("Traveler", "Part", "Serial", "Status", "Current step")
        yield table
        entry = Input(placeholder="or type a traveler number, Enter", id="traveler-number")
        entry.cursor_blink = False
        yield entry
        yield MessageLine(id="message")
        yield StatusBar()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="queue")
    async def action_refresh(self) -> None:
        try:
            travelers = await self.station.client.queue()
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.show(travelers)

    def show(self, travelers: list[TravelerSummary]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for t in travelers:
            table.add_row(
                t.number,
                f"{t.part_number} {t.part_name}",
                t.serial or "-",
                STATUS_WORDS[t.status],
                t.current_step or "-",
                key=t.number,
            )
        if not travelers:
            self.say("No travelers are waiting at this work center.")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.station.open_traveler(event.row_key.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        number = event.value.strip()
        event.input.value = ""
        if number:
            self.station.open_traveler(number)
