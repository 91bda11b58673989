"""The step list of a traveler: number, title and status as a symbol and a letter."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from kiosk.themes.console import shown
from kiosk.wire import Step, StepStatus

MARKS: dict[StepStatus, str] = {
    StepStatus.COMPLETE: "✔",
    StepStatus.IN_WORK: "▶",
    StepStatus.PAUSED: "‖",
    StepStatus.NOT_STARTED: "·",
}


def step_label(step: Step) -> Text:
    label = Text(
        f"{shown(MARKS[step.status])} {step.number} {step.title}",
        no_wrap=True,
        overflow="ellipsis",
    )
    if step.status is StepStatus.COMPLETE:
        label.stylize("dim")
    return label


class StepList(OptionList):
    """Steps in order; the highlighted one is shown in detail beside it.

    A long traveler is listed one operation at a time: the arrows past either end ask for the
    operation before or after (`PastEnd`), where a plain list would wrap round.
    """

    class PastEnd(Message):
        """Up on the first step (`direction` -1) or down on the last (+1)."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    DEFAULT_CSS = """
    StepList {
        width: 24;
        height: 1fr;
        border: none;
        border-right: solid $panel;
        padding: 0;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &:focus { border: none; border-right: solid $accent; }
    }
    """

    def show_steps(self, steps: tuple[Step, ...], highlight: int | None) -> None:
        self.clear_options()
        self.add_options([Option(step_label(s), id=str(s.id)) for s in steps])
        index = next((n for n, s in enumerate(steps) if s.id == highlight), 0)
        if steps:
            self.highlighted = index

    def action_cursor_up(self) -> None:
        if self.highlighted == 0:
            self.post_message(self.PastEnd(-1))
        else:
            super().action_cursor_up()

    def action_cursor_down(self) -> None:
        if self.highlighted is not None and self.highlighted == self.option_count - 1:
            self.post_message(self.PastEnd(1))
        else:
            super().action_cursor_down()

    def highlighted_step_id(self) -> int | None:
        if self.highlighted is None:
            return None
        option_id = self.get_option_at_index(self.highlighted).id
        return None if option_id is None else int(option_id)
