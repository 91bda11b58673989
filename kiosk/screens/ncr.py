"""Raising a nonconformance (description, defect code, quantity) and dispositioning one
(rationale and instructions, before quality signs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk import rules
from kiosk.screens.dialog import dialog_css
from kiosk.wire import Disposition, Ncr


def codes_text(codes: Mapping[str, str]) -> str:
    return " · ".join(f"{code} {words}" for code, words in codes.items())


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

    def __init__(
        self,
        context: str,
        description: str = "",
        defect_code: str = "",
        codes: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.codes = rules.DEFECT_CODES if codes is None else codes
        """The plant's list, as the server checks it (from the station info)."""
        self._description = description
        self._defect_code = defect_code

    def compose(self) -> ComposeResult:
        with Vertical():
            # Labels and typed text are shown as given, never read as markup: see MessageLine.
            yield Static(f"! Raise NCR: {self.context}", classes="heading", markup=False)
            yield Static("The traveler goes on hold until quality dispositions the NCR.")
            yield Static("Description")
            yield Input(self._description, id="description")
            yield Static(f"Defect code ({codes_text(self.codes)})", markup=False)
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
        try:
            rules.ensure_defect_code(code, self.codes)
        except rules.Refusal as refusal:
            return self._error(refusal.detail, "#defect")
        if not quantity.isdigit() or int(quantity) < 1:
            return self._error("Quantity must be a whole number of at least 1.", "#quantity")
        self.dismiss(NcrDraft(description, code, int(quantity)))

    def _error(self, text: str, field: str) -> None:
        self.query_one("#error", Static).update(f"✘ {text}")
        self.query_one(field, Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class DispositionDraft:
    disposition: Disposition
    rationale: str
    instructions: str

    def summary(self, ncr: Ncr) -> str:
        """What the signer reads before signing: the NCR, the decision, why and what to do."""
        lines = [ncr.description, f"Disposition: {self.disposition.value.replace('_', ' ')}"]
        if self.rationale:
            lines.append(f"Rationale: {self.rationale}")
        if self.instructions:
            lines.append(f"Instructions: {self.instructions}")
        return "\n".join(lines)


def approval_summary(ncr: Ncr) -> str:
    """What the second approver reads: the decision, who made it, why and what to do."""
    first = ncr.disposition_signature
    who = f" by {first.printed_name}" if first is not None else ""
    words = ncr.disposition.value.replace("_", " ") if ncr.disposition else "-"
    lines = [ncr.description, f"Disposition: {words}{who}", f"Rationale: {ncr.rationale or '-'}"]
    if ncr.instructions:
        lines.append(f"Instructions: {ncr.instructions}")
    return "\n".join(lines)


class DispositionScreen(ModalScreen[DispositionDraft | None]):
    """Why the disposition is right and what to do: checked by the same rule the server runs
    (rules.ensure_disposition_complete) before the signer is asked for badge and PIN."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = dialog_css(
        "DispositionScreen",
        width=76,
        colour="$warning",
        extra="& Input { margin: 0 0 1 0; } & .error { color: $error; text-style: bold; }",
    )

    def __init__(self, ncr: Ncr, disposition: Disposition) -> None:
        super().__init__()
        self.ncr = ncr
        self.disposition = disposition

    def compose(self) -> ComposeResult:
        words = self.disposition.value.replace("_", " ")
        needs_second = self.disposition in rules.SECOND_APPROVAL
        with Vertical():
            yield Static(f"{self.ncr.number}: {words}", classes="heading", markup=False)
            yield Static(self.ncr.description, markup=False)
            if needs_second:
                yield Static("Needs a second approval before the hold can be released.")
            if self.disposition in rules.ENDING:
                yield Static("Ends the traveler: nothing more can be recorded on it.")
            yield Static("Rationale (why this disposition)")
            yield Input(id="rationale", max_length=2000)
            yield Static("Instructions (what to do)")
            yield Input(id="instructions", max_length=2000)
            yield Static("Enter on the last field goes on to sign; Esc cancels.")
            yield Static("", classes="error", id="error")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self.query_one("#rationale", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "instructions":
            self.focus_next()
            return
        rationale = self.query_one("#rationale", Input).value.strip()
        instructions = self.query_one("#instructions", Input).value.strip()
        try:
            rules.ensure_disposition_complete(self.disposition, rationale, instructions)
        except rules.Refusal as refusal:
            field = "#rationale" if refusal.rule == "rationale_missing" else "#instructions"
            self.query_one("#error", Static).update(f"✘ {refusal.detail}")
            self.query_one(field, Input).focus()
            return
        self.dismiss(DispositionDraft(self.disposition, rationale, instructions))

    def action_cancel(self) -> None:
        self.dismiss(None)
