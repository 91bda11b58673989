"""The work queue: travelers ready at this station's work center, opened by scan or by Enter."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from kiosk.client import BackendError
from kiosk.screens.kept import KeptScreen
from kiosk.themes.console import shown
from kiosk.widgets.key_footer import KeyFooter
from kiosk.widgets.message_line import MessageLine
from kiosk.widgets.status_bar import StatusBar
from kiosk.wire import TravelerStatus, TravelerSummary

STATUS_WORDS: dict[TravelerStatus, str] = {
    TravelerStatus.NOT_STARTED: "· not started",
    TravelerStatus.IN_WORK: "▶ in work",
    TravelerStatus.ON_HOLD: "■ ON HOLD",
    TravelerStatus.COMPLETE: "✔ complete",
    TravelerStatus.SCRAPPED: "✘ SCRAPPED",
    TravelerStatus.RETURNED: "✘ RETURNED",
}


QUEUE_REFRESH_SECONDS = 30.0
QUEUE_MAX_ROWS = 2000
"""The most rows the server answers at once (views.QUEUE_MAX): the table holds no more."""
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
            t.serial or t.asset or "-",
            shown(STATUS_WORDS[t.status]),
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


class QueueTable(DataTable[Text]):
    """The queue's table. It says when its size changes: its columns are fitted to its width,
    and whether a scroll bar takes two columns of it depends on its height."""

    class Resized(Message):
        """The table's size changed (handled as `on_queue_table_resized`)."""

    def on_resize(self) -> None:
        self.post_message(self.Resized())


PAGE = 100
"""Queue rows read at a time; the next page is read as the cursor nears the end."""
NEAR_END = 10
SEARCH_PAUSE = 0.25
"""Seconds of no typing before the typed text searches the queue on the server."""


class QueueScreen(KeptScreen):
    """The queue, read a page at a time and updated in place by row key (never rebuilt on a
    refresh): a queue of 10,000 costs what a queue of 100 does.

    Typed keys go to the number field, whatever the arrows did to the table: the text searches
    the queue, and Enter opens what was typed (the highlighted row when nothing was typed)."""

    BINDINGS = [
        Binding("f4", "refresh", "Refresh"),
        Binding("f10", "app.sign_out", "Sign out"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("pageup", "move(-10)", show=False),
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
        """The queue as last loaded (every page read so far); None until the server answered."""
        self._more = False
        """The server has rows after the last one read."""
        self._search = ""
        self._search_timer: Timer | None = None
        self._widths: list[int] = []
        """The widths of the table's columns, as fitted by queue_cells."""

    def compose(self) -> ComposeResult:
        yield Static(
            "Work queue: scan a traveler, or type its number and Enter (arrows to choose)",
            classes="heading",
        )
        table = QueueTable(cursor_type="row", zebra_stripes=False, id="queue")
        table.add_columns(*HEADERS)
        table.can_focus = False  # keys stay in the number field; the arrows move this cursor
        yield table
        entry = Input(placeholder="traveler, part or serial; Enter opens", id="traveler-number")
        entry.cursor_blink = False
        yield entry
        yield MessageLine(id="message")
        yield StatusBar()
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.action_refresh()
        # New travelers released by the ERP, holds placed elsewhere: the queue keeps itself current.
        self.set_interval(QUEUE_REFRESH_SECONDS, self.action_refresh)

    def on_screen_resume(self) -> None:
        self.query_one(Input).focus()
        self.action_refresh()

    @work(exclusive=True, group="queue")
    async def action_refresh(self) -> None:
        """Read again the rows shown (the pages read so far, up to the server's maximum)."""
        shown = len(self._travelers or ())
        limit = min(max(PAGE, shown), QUEUE_MAX_ROWS)
        try:
            travelers = await self.station.link.queue(search=self._search or None, limit=limit)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self._more = len(travelers) >= limit
        self.show(travelers)

    @work(exclusive=True, group="queue-more")
    async def load_more(self) -> None:
        rows = self._travelers or []
        if not self._more or not rows or len(rows) >= QUEUE_MAX_ROWS:
            return
        try:
            page = await self.station.link.queue(
                after=rows[-1].number, search=self._search or None, limit=PAGE
            )
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self._more = len(page) >= PAGE
        known = {t.number for t in rows}
        self.show(rows + [t for t in page if t.number not in known])

    def show(self, travelers: list[TravelerSummary]) -> None:
        self._travelers = travelers
        found = self.query(DataTable)
        if not found:
            # A new badge pops this screen while its refresh is out; Textual prunes the
            # children before it cancels the screen's workers, and the answer lands here.
            return
        table = found.first()
        if not table.size.height:  # not laid out yet: shown when it is (`Resized`)
            return
        was_at = self._row_key_at_cursor(table)
        room = table.size.width
        if len(travelers) >= table.size.height:
            room -= SCROLLBAR_WIDTH
        cells = queue_cells(travelers, room)
        widths = [
            max([cell_len(h), *(cell_len(row[n]) for row in cells)]) for n, h in enumerate(HEADERS)
        ]
        if widths != self._widths:
            # Columns of the widths the cells were fitted to: a DataTable column keeps the width
            # of the widest cell it ever held (a queue drawn at 120 columns would scroll sideways
            # at 80) and measures its rows only when idle. Only new widths rebuild the table;
            # a refresh otherwise updates it in place.
            table.clear(columns=True)
            for header, width in zip(HEADERS, widths, strict=True):
                table.add_column(header, width=width)
            self._widths = widths
        # Text, not str: DataTable reads str cells as markup, and these come from the ERP.
        update_rows(table, {
            t.number: tuple(Text(c) for c in row)
            for t, row in zip(travelers, cells, strict=True)
        })  # fmt: skip
        # A refresh (every return from a traveler) keeps the cursor on the same traveler.
        if was_at is not None and was_at in table.rows:
            table.move_cursor(row=table.get_row_index(was_at), animate=False)
        if not travelers:
            self.say(
                f"No traveler here matches {self._search}."
                if self._search
                else "No travelers are waiting at this work center."
            )

    def _task_of_asset(self, typed: str) -> str | None:
        """An asset's id typed opens its task listed here (the highlighted one if it is one of
        them): a maintenance crew reads the id off the machine, not the traveler's number."""
        wanted = typed.upper()
        tasks = [t.number for t in self._travelers or () if t.asset == wanted]
        cursor = self._row_key_at_cursor(self.query_one(DataTable))
        return cursor if cursor in tasks else next(iter(tasks), None)

    def row_of(self, number: str) -> TravelerSummary | None:
        """The queue's row for traveler `number`, if it is listed."""
        wanted = number.strip().upper()
        return next((t for t in self._travelers or () if t.number == wanted), None)

    @staticmethod
    def _row_key_at_cursor(table: DataTable[Text]) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_queue_table_resized(self) -> None:
        if self._travelers is not None:
            self.show(self._travelers)

    def action_move(self, rows: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            target = max(0, min(table.row_count - 1, table.cursor_row + rows))
            table.move_cursor(row=target, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self._more and event.cursor_row >= event.data_table.row_count - NEAR_END:
            self.load_more()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.station.open_traveler(event.row_key.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_PAUSE, self._search_typed)

    def _search_typed(self) -> None:
        self._search_timer = None
        typed = self.query_one(Input).value.strip()
        if typed != self._search:
            self._search = typed
            self.action_refresh()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        number = event.value.strip()
        if number:
            event.input.value = ""
            self._search = ""
            self.station.open_traveler(self._task_of_asset(number) or number)
            return
        key = self._row_key_at_cursor(self.query_one(DataTable))
        if key:
            self.station.open_traveler(key)


def update_rows(table: DataTable[Text], rows: dict[str, tuple[Text, ...]]) -> None:
    """Make `table` hold `rows` (key -> cells, in order), touching only what changed: cells
    updated in place, rows gone removed, new rows added, and a sort only if one came between."""
    for gone in [k for k in table.rows if k.value not in rows]:
        table.remove_row(gone)
    appended = False
    for key, cells in rows.items():
        if key not in table.rows:
            table.add_row(*cells, key=key)
            appended = True
            continue
        old = table.get_row(key)
        for column, (before, after) in enumerate(zip(old, cells, strict=True)):
            if before != after:
                table.update_cell(key, table.ordered_columns[column].key, after)
    order = [k.value for k in table.rows]
    if appended and order != list(rows):
        position = {key: n for n, key in enumerate(rows)}
        table.sort(key=lambda row: position[str(row[0])])
