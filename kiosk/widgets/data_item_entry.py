"""Entry for one data item of a step: label with limits, the value, and the verdict as typed."""

from __future__ import annotations

import rich.repr
from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.widgets import Input, Static

from kiosk import rules
from kiosk.client.projection import is_pending
from kiosk.themes.console import shown
from kiosk.wire import DataItem, EvidenceFile, ItemKind

HINTS: dict[ItemKind, str] = {
    ItemKind.MEASUREMENT: "number",
    ItemKind.PASS_FAIL: "pass / fail",
    ItemKind.TEXT: "text",
    ItemKind.TOOL: "scan tool",
    ItemKind.MATERIAL: "scan lot",
    ItemKind.ACKNOWLEDGEMENT: "type ack",
    ItemKind.PHOTO: "^o: photo",
    ItemKind.FILE: "^o: file",
}


def describe(item: DataItem) -> str:
    if item.kind is ItemKind.MEASUREMENT and item.lower is not None and item.upper is not None:
        return f"{item.label} [{rules.limits_text(item)}]"
    if item.expected is not None:  # what it must be, said before anyone scans the wrong thing
        if item.kind is ItemKind.MATERIAL:
            return f"{item.label} [part {item.expected}]"
        wanted = item.expected
        for name in ("serial", "lot", "part_number"):
            wanted = wanted.replace("{" + name + "}", f"the {name.replace('_', ' ')}")
        return f"{item.label} [{wanted}]"
    return item.label


def verdict_for(item: DataItem, raw: str) -> tuple[str, str]:
    """(text, css class) for what is typed, judged by the same rule the server applies."""
    text, css = _verdict(item, raw)
    return shown(text), css


def _verdict(item: DataItem, raw: str) -> tuple[str, str]:
    if not raw.strip():
        return "", ""
    try:
        _value, passed = rules.evaluate(item, raw)
    except rules.Refusal as refusal:
        return f"✘ {refusal.detail.split(': ', 1)[-1]}", "-bad"
    if passed is None:
        return "", ""
    if item.kind is ItemKind.MEASUREMENT:
        return ("✔ in tolerance", "-good") if passed else ("✘ OUT OF TOLERANCE", "-bad")
    return ("✔ pass", "-good") if passed else ("✘ fail", "-bad")


PENDING_MARK = "…"
"""Before a value the server has not confirmed yet. In words too ("not sent yet"): a colour
alone would say nothing on a monochrome panel; "…" is in the Linux console fonts."""


def recorded_text(item: DataItem) -> str:
    latest = item.latest
    if latest is None:
        return "not recorded"
    value = f"{latest.value} {item.unit}" if item.unit else latest.value
    if item.kind in rules.EVIDENCE_TYPES:  # a file: its facts, not its JSON
        kept = EvidenceFile.of_value(latest.value)
        value = kept.facts() if kept else "?"
    ncr = f" {item.ncr_number}" if item.ncr_number else ""
    if is_pending(latest.id):  # on this station only: recorded in its outbox, not yet confirmed
        return f"{PENDING_MARK} {value} · {latest.recorded_by}{ncr} · not sent yet"
    mark = {True: "✔", False: "✘", None: "•"}[latest.passed]
    if latest.corrects is not None:  # the history in one line: was, is, who and why
        return f"{shown(mark)} {latest.corrects} -> {value} corrected by {latest.recorded_by}: {latest.reason}{ncr}"
    return f"{shown(mark)} {value} · {latest.recorded_by}{ncr}"


class ValueInput(Input):
    """The value field: a fixed-width Input whose text never re-lays out the screen.

    Textual's Input sets its virtual size to the text's width on every key, and that reactive
    asks for a layout of the whole screen: 10-20 ms per key on a traveler screen, most of the
    key -> echo time (scripts/bench_interaction.py). This field's width is fixed by CSS, so its
    text only changes how it scrolls inside itself: a repaint is enough.
    """

    virtual_size = Reactive(Size(0, 0), layout=False, repaint=True)


def keeps_its_box(verdict: Static, text: str) -> bool:
    """Whether `text` fits the verdict's box as it is, which then need not change: its width is
    its reserved minimum (what is shorter leaves it as it is) and `text` fits on its one line.

    Textual lays out the whole screen for any widget that may change size: 4-8 ms a key on a
    traveler screen, where the verdict changes on a third of the keys typed into a measurement
    (scripts/bench_interaction.py).
    """
    size, reserved = verdict.size, verdict.styles.min_width
    if reserved is None or size.height != 1 or not reserved.is_cells:
        return False
    return size.width == int(reserved.value) and cell_len(text) <= size.width


class DataItemEntry(Vertical):
    """Two lines: what to record (with limits); then the input, the live verdict, the last value."""

    DEFAULT_CSS = """
    DataItemEntry {
        height: auto;
        & > .label { padding: 0 1; text-style: bold; }
        /* At 80 columns the detail pane has about 36 cells beside the input: a fixed-width
           verdict left too few for "✔ 12.702 mm · Ana Ortiz", and one line cut the rest off.
           The verdict takes only the room it needs and both may wrap onto a second line. */
        & > Horizontal { height: auto; }
        & Input { width: 16; margin: 0 1; }
        & .verdict { width: auto; max-width: 30; height: auto; margin-right: 1; }
        /* While a measurement is typed its verdict keeps room for "✘ OUT OF TOLERANCE", so
           a verdict that changes with the keys needs a repaint, not a layout (keeps_its_box). */
        &.-measurement:focus-within .verdict { min-width: 18; min-height: 1; }
        & .verdict.-good { color: $success; }
        & .verdict.-bad { color: $error; text-style: bold; }
        & .recorded { width: 1fr; height: auto; color: $foreground 70%; }
        & .recorded.-pending { text-style: italic; }
    }
    """

    class Submitted(Message):
        """A value was entered for the item (handled as `on_data_item_entry_submitted`)."""

        def __init__(self, entry: DataItemEntry, item: DataItem, value: str) -> None:
            super().__init__()
            self.entry = entry
            self.item = item
            self.value = value

        @property
        def control(self) -> DataItemEntry:
            return self.entry

    class Changed(Message):
        """The value field changed, keystroke by keystroke (handled as
        `on_data_item_entry_changed`): the station's session keeps it as a draft."""

        def __init__(self, entry: DataItemEntry, item: DataItem, value: str) -> None:
            super().__init__()
            self.entry = entry
            self.item = item
            self.value = value

        def __rich_repr__(self) -> rich.repr.Result:
            yield "item", self.item.id  # what was typed stays out of any log

        @property
        def control(self) -> DataItemEntry:
            return self.entry

    def __init__(self, item: DataItem, draft: str = "", *, disabled: bool = False) -> None:
        measured = "-measurement" if item.kind is ItemKind.MEASUREMENT else None
        super().__init__(id=f"item-{item.id}", classes=measured, disabled=disabled)
        self.item = item
        self._draft = draft
        self._judged: tuple[str, str] | None = None  # the verdict on show

    def compose(self) -> ComposeResult:
        # What people typed is shown as typed: as markup "[/]" raised an error that closed the
        # station, and "[b]" vanished. Labels come from the ERP and are plain text too.
        yield Static(describe(self.item), classes="label", markup=False)
        entry = ValueInput(
            self._draft, placeholder=HINTS[self.item.kind], id=f"value-{self.item.id}"
        )
        entry.cursor_blink = False
        with Horizontal():
            yield entry
            yield Static("", classes="verdict", markup=False)
            pending = self.item.latest is not None and is_pending(self.item.latest.id)
            classes = "recorded -pending" if pending else "recorded"
            yield Static(recorded_text(self.item), classes=classes, markup=False)

    @property
    def value(self) -> str:
        return self.query_one(Input).value

    def fill(self, value: str) -> None:
        self.query_one(Input).value = value

    def on_mount(self) -> None:
        self._judge(self._draft)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._judge(event.value)
        self.post_message(self.Changed(self, self.item, event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.Submitted(self, self.item, event.value))

    def _judge(self, raw: str) -> None:
        judged = verdict_for(self.item, raw)
        if judged == self._judged:
            return  # most keys leave the verdict as it was: no layout of the screen for them
        self._judged = judged
        text, css = judged
        verdict = self.query_one(".verdict", Static)
        verdict.update(text, layout=not keeps_its_box(verdict, text))
        verdict.set_class(css == "-good", "-good")
        verdict.set_class(css == "-bad", "-bad")

    def clear(self) -> None:
        self.query_one(Input).value = ""
