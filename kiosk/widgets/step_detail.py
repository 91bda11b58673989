"""The current step in full: title and revision, instructions, data items, needs and signatures."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from kiosk import rules
from kiosk.themes.console import shown
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.wire import SignatureManifest, Step, StepStatus

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
        [f"{shown('✍')} {s.meaning.value.upper()} by {s.printed_name}, {s.server_time:%Y-%m-%d %H:%M} UTC, {s.station}"
         for s in step.signatures] + [voided_text(s) for s in step.voided]
    )  # fmt: skip


def voided_text(sig: SignatureManifest) -> str:
    """A voided signature stays on the step, said void, with who voided it and why."""
    by = f" by {sig.voided.printed_name}" if sig.voided else ""
    return f"{shown('✘')} VOID {sig.meaning.value} by {sig.printed_name} -- voided{by}: {sig.void_reason}"


def redline_text(step: Step) -> str:
    """Each engineering change issued while the step was in work, until acknowledged: what
    changed, its number and reason, and the revisions, old -> new."""
    lines = []
    for red in step.redlines:
        lines.append(
            f"REDLINE {red.change}: rev {red.old_revision} -> {red.new_revision}. {red.reason}"
        )
        lines.extend(f"  - {change}" for change in red.changes)
    if lines:
        lines.append("Ctrl+L: acknowledge the change (recorded) before you continue.")
    return "\n".join(lines)


def documents_text(step: Step) -> str:
    """The step's documents, one a line: "DWG-8810-011 rev C  Actuator bracket assembly"."""
    if not step.documents:
        return ""
    lines = [
        f"{d.number} rev {d.revision}  {d.title}"
        + (f"  (superseded by rev {d.superseded_by})" if d.superseded_by else "")
        for d in step.documents
    ]
    return "Drawings (^o to view): " + "\n".join(lines)


def title_text(step: Step, editable: bool) -> str:
    kind = " · INSPECTION" if step.inspection else ""
    state = STATUS_WORDS[step.status]
    if not editable and step.status is not StepStatus.COMPLETE:
        state = "■ on hold: no work until released"  # "F2 to start" would be a false promise
    return f"Step {step.number} {step.title} · rev {step.revision}{kind} · {state}"


class StepDetail(VerticalScroll):
    """The step in full. Its title wraps: the step list beside it cuts long titles short.

    `show_step` fills the same widgets with another step; only the data item entries are
    mounted anew, and only when the items differ (mounting is most of a step's paint).
    """

    DEFAULT_CSS = """
    StepDetail {
        height: 1fr;
        padding: 0 1;
        & > .title { text-style: bold; color: $accent; }
        & > .instructions { margin: 0 0 1 0; }
        & > .deviations { color: $warning; margin: 0 0 1 0; }
        & > .documents { color: $accent; margin: 0 0 1 0; }
        & > .documents.-none { display: none; }
        & > #items { height: auto; }
        & > .needs { color: $warning; margin-top: 1; }
        & > .signatures { color: $success; }
        & > .redline { color: $error; text-style: bold; margin: 0 0 1 0; }
        & > .redline.-none { display: none; }
    }
    """

    def __init__(
        self, step: Step, drafts: dict[int, str], *, editable: bool, deviations: str = ""
    ) -> None:
        super().__init__(id="step-detail")
        self.step = step
        self._drafts = drafts
        self._editable = editable
        self._deviations = deviations
        """The deviations covering the step, one line each (rules.deviation_text)."""

    def compose(self) -> ComposeResult:
        # Server text (titles, instructions, values in the needs) is plain text, never markup.
        yield Static(title_text(self.step, self._editable), classes="title", markup=False)
        yield self._redline(Static(redline_text(self.step), classes="redline", markup=False))
        yield Static(self.step.instructions, classes="instructions", markup=False)
        deviations = Static(self._deviations, classes="deviations", markup=False)
        deviations.display = bool(self._deviations)  # most steps have none: no blank line
        yield deviations
        yield Static(
            documents_text(self.step),
            classes="documents" if self.step.documents else "documents -none",
            markup=False,
        )
        with Vertical(id="items"):
            yield from self._entries()
        yield Static(needs_text(self.step), classes="needs", markup=False)
        yield Static(signatures_text(self.step), classes="signatures", markup=False)

    def _entries(self) -> list[DataItemEntry]:
        # A redline first: no value goes onto a step whose change is not yet acknowledged.
        editable = self._editable and self.step.status is StepStatus.IN_WORK
        editable = editable and not self.step.redlines
        return [
            DataItemEntry(item, self._drafts.get(item.id, ""), disabled=not editable)
            for item in self.step.items
        ]

    async def show_step(
        self, step: Step, drafts: dict[int, str], *, editable: bool, deviations: str = ""
    ) -> None:
        """Another step (or this one changed) in the same widgets."""
        same_entries = (
            self._editable == editable
            and (self.step.status is StepStatus.IN_WORK) == (step.status is StepStatus.IN_WORK)
            and self.step.items == step.items
            and bool(self.step.redlines) == bool(step.redlines)
            and drafts == self.drafts()
        )
        self.step, self._drafts, self._editable = step, drafts, editable
        self.query_one(".title", Static).update(title_text(step, editable))
        self._redline(self.query_one(".redline", Static)).update(redline_text(step))
        self.query_one(".instructions", Static).update(step.instructions)
        shown = self.query_one(".deviations", Static)
        shown.update(deviations)
        shown.display = bool(deviations)
        self._deviations = deviations
        shown = self.query_one(".documents", Static)
        shown.update(documents_text(step))
        shown.set_class(not step.documents, "-none")
        self.query_one(".needs", Static).update(needs_text(step))
        self.query_one(".signatures", Static).update(signatures_text(step))
        self.scroll_home(animate=False)
        if not same_entries:
            items = self.query_one("#items", Vertical)
            await items.remove_children()
            await items.mount_all(self._entries())

    def _redline(self, shown: Static) -> Static:
        shown.set_class(not self.step.redlines, "-none")
        return shown

    def drafts(self) -> dict[int, str]:
        """What is typed and not yet recorded, per item: kept across locks and refreshes."""
        return {e.item.id: e.value for e in self.query(DataItemEntry) if e.value.strip()}
