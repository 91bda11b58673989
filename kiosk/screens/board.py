"""The live board: who works where on what and for how long, holds and open NCRs with their age,
refused actions, help and stop requests. The same screen in `kiosk board` over SSH and at a
station opened with a supervisor's or quality's badge (F11).

It long-polls the server (kiosk.client.ExecutionClient.board): the server answers as soon as the
floor changes, so the board is current within a second without reloading every few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from kiosk.client import BackendError, ExecutionClient
from kiosk.screens.base import MessageScreen, tabbed_tables
from kiosk.screens.prompt import PromptScreen
from kiosk.wire import AcknowledgeAndon, AndonRequest, Board, Person, ResolveAndon

POLL_WAIT = 20.0
"""Seconds the server may hold one long poll before answering 'no change'."""
RETRY_SECONDS = 3.0
AGES_EVERY = 15.0
"""Seconds between redraws of the ages ("for 12m") while nothing else changes."""

COLUMNS: dict[str, tuple[str, ...]] = {
    "floor": ("Work center", "Station", "Who", "Traveler", "Step", "For"),
    "andon": ("Request", "Traveler", "Step", "Reason", "Raised by", "Age", "Answered"),
    "holds": ("What", "Traveler", "Why", "Age"),
    "refused": ("Station", "Refused action and the server's reason"),
    "certs": ("Certification expiring soon",),
}
TABS = (
    ("floor", "Floor"),
    ("andon", "Help/stop"),
    ("holds", "Holds & NCRs"),
    ("refused", "Refused"),
    ("certs", "Certs"),
)


def age(delta: timedelta) -> str:
    """Short, in words a glance reads: 45s, 12m, 3h05m, 2d4h."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def answered(request: AndonRequest) -> str:
    return f"seen by {request.acknowledged_by}" if request.acknowledged_by else "! waiting"


class BoardScreen(MessageScreen):
    """The floor, live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "acknowledge", "Acknowledge"),
        Binding("f3", "resolve", "Resolve"),
        Binding("f4", "refresh", "Refresh"),
        Binding("escape", "close", "Close"),
    ]
    """
    | Key | Does |
    | :- | :- |
    | f2 | Acknowledge the help or stop request under the cursor (Help/stop tab). |
    | f3 | Resolve it, saying what was done. |
    | f4 | Read the board now. |
    | escape | Close the board. |
    """

    DEFAULT_CSS = """
    BoardScreen {
        & .heading {
            background: $primary; color: $foreground; text-style: bold; padding: 0 1;
            height: 1; text-wrap: nowrap; text-overflow: ellipsis;
        }
        & #alerts { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & #alerts.-calling { background: $error; color: $foreground; text-style: bold; }
        & TabbedContent { height: 1fr; }
        & TabPane { padding: 0; }
        & DataTable { height: 1fr; }
    }
    """

    def __init__(self, client: ExecutionClient, session: str, viewer: Person) -> None:
        super().__init__()
        self.client = client
        self.session = session
        self.viewer = viewer
        self.board: Board | None = None
        self._received = 0.0  # monotonic time the board arrived: ages count on from it

    def compose(self) -> ComposeResult:
        heading = Static(f"Board · {self.viewer.name}", classes="heading", id="board-heading")
        yield from tabbed_tables([heading, Static("", id="alerts")], TABS, COLUMNS)

    def on_mount(self) -> None:
        self.follow()
        self.set_interval(AGES_EVERY, self._redraw)

    # --- reading -----------------------------------------------------------------------------------

    @work(exclusive=True, group="board-follow")
    async def follow(self) -> None:
        """Read the board, then wait on the server for each change, for as long as it is shown."""
        version: str | None = None
        while True:
            try:
                board = await self.client.board(self.session, after=version, wait=POLL_WAIT)
            except BackendError as exc:
                self.say(exc.detail, "error")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if board.version != version or self.board is None:
                self.show(board)
            version = board.version

    def action_refresh(self) -> None:
        self.follow()  # exclusive: the poll under way is cancelled and the board read at once

    def _redraw(self) -> None:
        if self.board is not None:
            self.show(self.board, received=self._received)

    def now(self) -> datetime:
        """The server's time now, as far as the board knows: no clock skew between the two."""
        assert self.board is not None
        return self.board.generated_at + timedelta(seconds=time.monotonic() - self._received)

    def show(self, board: Board, received: float | None = None) -> None:
        self.board, self._received = board, received or time.monotonic()
        now = self.now()
        self._fill("floor", self._floor(board, now))
        self._fill(
            "andon",
            [
                (
                    r.kind.upper(),
                    r.traveler,
                    r.step,
                    r.reason,
                    f"{r.raised_by} at {r.station}",
                    age(now - r.raised_at),
                    answered(r),
                )
                for r in board.andon
            ],  # fmt: skip
        )
        holds = [
            ("STOP" if h.stop else "hold", h.traveler, h.reason,
             age(now - h.placed_at))
            for h in board.holds
        ]  # fmt: skip
        ncrs = [
            (n.number, n.traveler, f"step {n.step}: {n.description}" if n.step else n.description,
             age(now - n.raised_at))
            for n in board.open_ncrs
        ]  # fmt: skip
        self._fill("holds", holds + ncrs)
        self._fill("refused", [(s.name, line) for s in board.stations for line in s.refused])
        self._fill("certs", [(line,) for line in board.certifications] or [("(none listed)",)])
        self._heading(board)

    def _floor(self, board: Board, now: datetime) -> list[tuple[str, ...]]:
        """One row per person clocked on a step, then each station where nobody is."""
        rows = [
            (w.work_center, w.station, w.person, w.traveler, w.step, age(now - w.since))
            for w in board.work
        ]
        working = {w.station for w in board.work}
        for s in board.stations:
            if s.name in working:
                continue
            who = s.person or ("✘ silent" if s.silent else "-")
            since = age(now - s.signed_in_at) if s.signed_in_at else "-"
            rows.append((s.work_center, s.name, who, "-", "-", since))
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def _heading(self, board: Board) -> None:
        signed_in = sum(1 for s in board.stations if s.person)
        self.query_one("#board-heading", Static).update(
            f"Board: {self.viewer.name} · {len(board.stations)} stations, {signed_in} signed in, "
            f"{len(board.work)} on steps · {len(board.holds)} holds · {len(board.open_ncrs)} NCRs"
        )
        stops = sum(1 for r in board.andon if r.kind == "stop")
        helps = len(board.andon) - stops
        waiting = sum(1 for r in board.andon if r.acknowledged_by is None)
        alerts = self.query_one("#alerts", Static)
        alerts.set_class(waiting > 0, "-calling")
        if board.andon:
            alerts.update(f"! {stops} STOP · {helps} HELP · {waiting} waiting for a supervisor")
        else:
            alerts.update("No help or stop requests.")

    def _fill(self, table_id: str, rows: Sequence[tuple[str, ...]]) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*row)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    # --- answering requests --------------------------------------------------------------------------

    def _selected(self) -> AndonRequest | None:
        if self.board is None or not self.board.andon:
            self.say("No help or stop requests to answer.", "info")
            return None
        row = self.query_one("#andon", DataTable).cursor_row
        return self.board.andon[min(max(row, 0), len(self.board.andon) - 1)]

    def action_acknowledge(self) -> None:
        request = self._selected()
        if request is not None:
            self._answer(
                AcknowledgeAndon(
                    actor_id=self.viewer.id, traveler=request.traveler, request_id=request.id
                )
            )

    def action_resolve(self) -> None:
        request = self._selected()
        if request is None:
            return

        def said(resolution: str | None) -> None:
            if resolution:
                self._answer(
                    ResolveAndon(
                        actor_id=self.viewer.id,
                        traveler=request.traveler,
                        request_id=request.id,
                        resolution=resolution,
                    )
                )

        prompt = PromptScreen(
            f"Resolve the {request.kind} request on {request.traveler} step {request.step}",
            "What was done? (3 characters at least)",
            min_length=3,
        )
        self.app.push_screen(prompt, said)

    @work(group="board-answer")
    async def _answer(self, action: AcknowledgeAndon | ResolveAndon) -> None:
        try:
            done = await self.client.answer_andon(self.session, action)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.say(done.message, "ok")

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()
