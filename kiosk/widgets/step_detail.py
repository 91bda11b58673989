"""The current step in full: title and revision, instructions, data items, needs and signatures."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from kiosk import rules
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.wire import Step, StepStatus

STATUS_WORDS: dict[StepStatus, str] = {
    StepStatus.NOT_STARTED: "not started: F2 to start",
    StepStatus.IN_WORK: "in work",
    StepStatus.PAUSED: "paused: F2 to resume",
    StepStatus.COMPLETE: "complete",
}


def needs_text(step: Step) -> str:
    if step.status is StepStatus.COMPLETE:
        return ""
    needs = rules.outstanding(step)
    if needs:
        return "Still needed: " + "; ".join(needs)
    if rules.performer(step) is None:
        return "Ready for sign-off: F5 to sign as performed."
    return "Waiting for inspector buy-off: F5 to sign as verified."


def signatures_text(step: Step) -> str:
    return "\n".join(
        f"✍ {s.meaning.value.upper()} by {s.printed_name}, {s.server_time:%Y-%m-%d %H:%M} UTC, {s.station}"
        for s in step.signatures
    )


class StepDetail(VerticalScroll):
    DEFAULT_CSS = """
    StepDetail {
        height: 1fr;
        padding: 0 1;
        & > .title { text-style: bold; color: $accent; }
        & > .instructions { margin: 0 0 1 0; }
        & > .needs { color: $warning; margin-top: 1; }
        & > .signatures { color: $success; }
    }
    """

    def __init__(self, step: Step, drafts: dict[int, str], *, editable: bool) -> None:
        super().__init__(id="step-detail")
        self.step = step
        self._drafts = drafts
        self._editable = editable

    def compose(self) -> ComposeResult:
        step = self.step
        kind = " · INSPECTION" if step.inspection else ""
        state = STATUS_WORDS[step.status]
        if not self._editable and step.status is not StepStatus.COMPLETE:
            state = "■ on hold: no work until released"  # "F2 to start" would be a false promise
        # Server text (titles, instructions, values in the needs) is plain text, never markup.
        yield Static(
            f"Step {step.number} {step.title} · rev {step.revision}{kind} · {state}",
            classes="title",
            markup=False,
        )
        yield Static(step.instructions, classes="instructions", markup=False)
        editable = self._editable and step.status is StepStatus.IN_WORK
        for item in step.items:
            yield DataItemEntry(item, self._drafts.get(item.id, ""), disabled=not editable)
        yield Static(needs_text(step), classes="needs", markup=False)
        yield Static(signatures_text(step), classes="signatures", markup=False)

    def drafts(self) -> dict[int, str]:
        """What is typed and not yet recorded, per item: kept across locks and refreshes."""
        return {e.item.id: e.value for e in self.query(DataItemEntry) if e.value.strip()}
