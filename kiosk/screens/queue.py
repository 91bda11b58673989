"""The work queue: travelers ready at this station's work center, opened by scan or by Enter."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
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


QUEUE_REFRESH_SECONDS = 30.0
HEADERS = ("Traveler", "Part", "Serial", "Status", "Current step")
CELL_PADDING = 2  # DataTable pads every cell with one space on each side
SCROLLBAR_WIDTH = 2


def queue_cells(travelers: list[TravelerSummary], width: int) -> list[tuple[str, ...]]:
    """The table's cells, fitted to `width` so the queue never scrolls sideways at 80 columns.

    The part name gives way first (the traveler screen's header shows it), then the current
    step's title is cut with an ellipsis; traveler, serial and status are always whole.
    """
    rows = [
        (
            t.number,
            t.part_number,
            t.part_name,
            t.serial or "-",
            STATUS_WORDS[t.status],
            t.current_step or "-",
        )
        for t in travelers
    ]

    def widest(column: int, header: str) -> int:
        return max([cell_len(header), *(cell_len(r[column]) for r in rows)])

    fixed = widest(0, HEADERS[0]) + widest(3, HEADERS[2]) + widest(4, HEADERS[3])
    room = width - fixed - CELL_PADDING * len(HEADERS)
    step_width = widest(5, HEADERS[4])
    with_names = max([cell_len(HEADERS[1]), *(cell_len(f"{r[1]} {r[2]}") for r in rows)])
    show_names = with_names + step_width <= room
    part_width = with_names if show_names else widest(1, HEADERS[1])
    step_room = max(cell_len(HEADERS[4]), room - part_width)
    return [
        (
            number,
            f"{part} {name}" if show_names else part,
            serial,
            status,
            step if cell_len(step) <= step_room else set_cell_size(step, step_room - 1) + "…",
        )
        for number, part, name, serial, status, step in rows
    ]


class QueueScreen(StationScreen):
    BINDINGS = [
        Binding("f4", "refresh", "Refresh"),
        Binding("f10", "app.sign_out", "Sign out"),
    ]

    DEFAULT_CSS = """
    QueueScreen {
        /* `$text` contrasts with the bar; `$foreground` was black on dark blue in high contrast. */
        & .heading { text-style: bold; padding: 0 1; background: $primary; color: $text; }
        & DataTable { height: 1fr; }
        & Input { margin: 0 1; width: 40; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._travelers: list[TravelerSummary] | None = None
        """The queue as last loaded; None until the server answered."""

    def compose(self) -> ComposeResult:
        yield Static(
            "Work queue: scan a traveler, or choose one and press Enter", classes="heading"
        )
        table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=False, id="queue")
        table.add_columns(*HEADERS)
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
        # New travelers released by the ERP, holds placed elsewhere: the queue keeps itself current.
        self.set_interval(QUEUE_REFRESH_SECONDS, self.action_refresh)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="queue")
    async def action_refresh(self) -> None:
        try:
            travelers = await self.station.link.queue()
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.show(travelers)

    def show(self, travelers: list[TravelerSummary]) -> None:
        self._travelers = travelers
        found = self.query(DataTable)
        if not found:
            # A new badge pops this screen while its refresh is out; Textual prunes the
            # children before it cancels the screen's workers, and the answer lands here.
            return
        table = found.first()
        was_at = self._row_key_at_cursor(table)
        # Columns too: a column keeps the width of the widest cell it ever held, so a queue
        # drawn at 120 columns would keep scrolling sideways after a resize to 80.
        table.clear(columns=True)
        table.add_columns(*HEADERS)
        room = table.size.width or self.size.width
        if len(travelers) >= table.size.height:
            room -= SCROLLBAR_WIDTH
        for t, cells in zip(travelers, queue_cells(travelers, room), strict=True):
            # Text, not str: DataTable reads str cells as markup, and these come from the ERP.
            table.add_row(*(Text(c) for c in cells), key=t.number)
        # A refresh (every return from a traveler) keeps the cursor on the same traveler.
        numbers = [t.number for t in travelers]
        if was_at in numbers:
            table.move_cursor(row=numbers.index(was_at), animate=False)
        if not travelers:
            self.say("No travelers are waiting at this work center.")

    @staticmethod
    def _row_key_at_cursor(table: DataTable[Text]) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_resize(self) -> None:
        if self._travelers is not None:
            self.show(self._travelers)

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
