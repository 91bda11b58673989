"""Raising a nonconformance: description, defect code and quantity."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk.screens.dialog import dialog_css

DEFECT_CODES = (
    "DIM dimension · TRQ torque · FOD foreign object · DMG damage · MAT material · DOC paperwork"
)


@dataclass(frozen=True)
class NcrDraft:
    description: str
    defect_code: str
    quantity: int


class NcrScreen(ModalScreen[NcrDraft | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = dialog_css(
        "NcrScreen",
        width=76,
        colour="$error",
        extra="& Input { margin: 0 0 1 0; } & .error { color: $error; text-style: bold; }",
    )

    def __init__(self, context: str, description: str = "", defect_code: str = "") -> None:
        super().__init__()
        self.context = context
        self._description = description
        self._defect_code = defect_code

    def compose(self) -> ComposeResult:
        with Vertical():
            # Labels and typed text are shown as given, never read as markup: see MessageLine.
            yield Static(f"! Raise NCR: {self.context}", classes="heading", markup=False)
            yield Static("The traveler goes on hold until quality dispositions the NCR.")
            yield Static("Description")
            yield Input(self._description, id="description")
            yield Static(f"Defect code ({DEFECT_CODES})")
            yield Input(self._defect_code, id="defect", max_length=32)
            yield Static("Quantity affected")
            yield Input("1", id="quantity", restrict=r"[0-9]*", max_length=6)
            yield Static("Enter on the last field raises the NCR; Esc cancels.")
            yield Static("", classes="error", id="error")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self.query_one("#description", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "quantity":
            self.focus_next()
            return
        description = self.query_one("#description", Input).value.strip()
        code = self.query_one("#defect", Input).value.strip().upper()
        quantity = self.query_one("#quantity", Input).value.strip()
        if len(description) < 3:
            return self._error(
                "Describe the nonconformance (at least 3 characters).", "#description"
            )
        if not code:
            return self._error("Enter a defect code.", "#defect")
        if not quantity.isdigit() or int(quantity) < 1:
            return self._error("Quantity must be a whole number of at least 1.", "#quantity")
        self.dismiss(NcrDraft(description, code, int(quantity)))

    def _error(self, text: str, field: str) -> None:
        self.query_one("#error", Static).update(f"✘ {text}")
        self.query_one(field, Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
