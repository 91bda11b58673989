"""Small modal prompts: one line of text, or one choice from a list."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from kiosk.screens.dialog import dialog_css

PROMPT_PARTS = """
        & Input { margin: 1 0; }
        & OptionList { height: auto; max-height: 12; border: none; margin: 1 0; }
"""


class PromptScreen(ModalScreen[str | None]):
    """Asks for one line of text; Enter returns it, Esc returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = dialog_css("PromptScreen", extra=PROMPT_PARTS)

    def __init__(self, heading: str, explanation: str, *, min_length: int = 1) -> None:
        super().__init__()
        self.heading = heading
        self.explanation = explanation
        self.min_length = min_length

    def compose(self) -> ComposeResult:
        with Vertical():
            # Headings and explanations carry typed text (NCR descriptions): never markup.
            yield Static(self.heading, classes="heading", markup=False)
            yield Static(self.explanation, markup=False)
            entry = Input(id="answer")
            entry.cursor_blink = False
            yield entry
            yield Static("Enter to confirm, Esc to cancel.")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if len(event.value.strip()) >= self.min_length:
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """Offers a list; Enter returns the chosen option's id, Esc returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = dialog_css("ChoiceScreen", extra=PROMPT_PARTS)

    def __init__(
        self,
        heading: str,
        explanation: str,
        choices: list[tuple[str, str]],
        *,
        cancellable: bool = True,
    ) -> None:
        super().__init__()
        self.heading = heading
        self.explanation = explanation
        self.choices = choices
        self.cancellable = cancellable

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.heading, classes="heading", markup=False)
            yield Static(self.explanation, markup=False)
            yield OptionList(*[Option(text, id=key) for key, text in self.choices])
            yield Static(
                "Arrows and Enter to choose" + (", Esc to cancel." if self.cancellable else ".")
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        if self.cancellable:  # a notice that must be acknowledged has no way around it
            self.dismiss(None)
