"""The traveler screen: header, step list, the current step with its data items, and the actions."""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, OptionList, Static

from kiosk import rules
from kiosk.client import BackendError
from kiosk.client.link import Proof
from kiosk.screens.base import StationScreen
from kiosk.screens.ncr import NcrDraft, NcrScreen
from kiosk.screens.prompt import ChoiceScreen, PromptScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.widgets.hold_banner import HoldBanner
from kiosk.widgets.message_line import MessageLine, Severity
from kiosk.widgets.status_bar import StatusBar
from kiosk.widgets.step_detail import StepDetail
from kiosk.widgets.step_list import StepList
from kiosk.wire import (
    Action,
    DataItem,
    Disposition,
    DispositionNcr,
    ItemKind,
    Meaning,
    PauseStep,
    PlaceHold,
    RaiseNcr,
    RecordValue,
    ReleaseHold,
    SignStep,
    StartStep,
    Step,
    Traveler,
    TravelerStatus,
)


def header_text(trav: Traveler) -> str:
    step = rules.current_step(trav)
    op = "complete"
    if step is not None:
        op = next(
            (
                f"Op {o.number} {o.name}"
                for o in trav.operations
                if step.number.startswith(o.number)
            ),
            step.number,
        )
    ident = trav.serial or trav.lot or "-"
    return (
        f"{trav.number} · {trav.work_order} · {trav.part_number} {trav.part_name} · {ident} · {op}"
    )


def applied_severity(action: Action, traveler: Traveler) -> Severity:
    """An out-of-tolerance value is recorded, yet no good news: a warning, not a green tick."""
    if isinstance(action, RecordValue):
        _step, item = rules.find_item(traveler, action.item_id)
        if item.latest is not None and item.latest.passed is False:
            return "warning"
    return "ok"


class TravelerScreen(StationScreen):
    BINDINGS = [
        Binding("f2", "start_step", "Start"),
        Binding("f3", "pause_step", "Pause"),
        Binding("f5", "sign", "Sign off"),
        Binding("f6", "raise_ncr", "NCR"),
        Binding("f7", "hold", "Hold"),
        Binding("f8", "disposition", "Dispo", show=False),
        Binding("f4", "refresh", "Refresh", show=False),
        Binding("escape", "back", "Queue"),
        Binding("f10", "app.sign_out", "Sign out"),
    ]

    DEFAULT_CSS = """
    TravelerScreen {
        /* Two lines at 80 columns: on one, the operation being worked was cut off. `$text`
           contrasts with the bar; `$foreground` was black on dark blue in high contrast. */
        & #traveler-header { background: $primary; color: $text; text-style: bold; padding: 0 1; height: auto; max-height: 2; }
        & #work { height: 1fr; }
        & #detail-pane { width: 1fr; }
    }
    """

    def __init__(self, traveler: Traveler) -> None:
        super().__init__()
        self.traveler = traveler
        self.selected: int | None = None
        step = rules.current_step(traveler)
        self.selected = step.id if step else (traveler.steps[0].id if traveler.steps else None)

    def compose(self) -> ComposeResult:
        yield Static(header_text(self.traveler), id="traveler-header", markup=False)
        yield HoldBanner(id="hold")
        with Horizontal(id="work"):
            yield StepList(id="steps")
            yield Vertical(id="detail-pane")
        yield MessageLine(id="message")
        yield StatusBar()
        yield Footer()

    async def on_mount(self) -> None:
        self.station.note_revisions(self.traveler, acknowledge=True)
        await self.show(self.traveler)

    # --- drawing ----------------------------------------------------------------------------------

    @property
    def step(self) -> Step | None:
        return next((s for s in self.traveler.steps if s.id == self.selected), None)

    async def show(self, traveler: Traveler, *, save: bool = True) -> None:
        if save:
            self.save_drafts()
        self.traveler = traveler
        # Whatever brought this traveler (a refresh, the answer to an action): a step whose
        # instructions changed revision since they were shown must be acknowledged first.
        self.station.note_revisions(traveler, acknowledge=False)
        self.query_one("#traveler-header", Static).update(header_text(traveler))
        self.query_one(HoldBanner).show_hold(traveler.hold)
        self.query_one(StepList).show_steps(traveler.steps, self.selected)
        await self._show_detail()

    async def _show_detail(self, *, focus_entry: bool = True) -> None:
        pane = self.query_one("#detail-pane", Vertical)
        await pane.remove_children()
        step = self.step
        if step is None:
            return
        editable = self.traveler.status is not TravelerStatus.ON_HOLD
        await pane.mount(StepDetail(step, self.station.drafts_for(step), editable=editable))
        # Focus the first item that still has nothing on record. A recorded item's input is
        # empty again too, so "first empty input" would send the next entry back into the
        # item just recorded, overwriting it.
        if not focus_entry:
            return
        target = next(
            (e for e in self.query(DataItemEntry) if not e.disabled and e.item.latest is None),
            None,
        )
        if target is not None:
            target.query_one(Input).focus()

    def save_drafts(self) -> None:
        for detail in self.query(StepDetail):
            self.station.keep_drafts(detail.step, detail.drafts())

    @on(OptionList.OptionHighlighted, "#steps")
    async def step_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        step_id = self.query_one(StepList).highlighted_step_id()
        if step_id is not None and step_id != self.selected:
            self.save_drafts()
            self.selected = step_id
            # Someone moving through the step list keeps the focus there; taking it into the
            # step's first input would stop the arrows at the first step in work.
            await self._show_detail(focus_entry=False)

    # --- sending actions --------------------------------------------------------------------------

    @work(exclusive=True, group="action")
    async def send(self, action: Action, proof: Proof | None = None) -> None:
        """Record `action` in the station's outbox and show it.

        A signature arrives with its proof (the sign-off prompt checked badge + PIN): the PIN
        went no further than that check; the outbox gets the server's signing ticket (online)
        or the station's attestation (offline, from the credential cache).
        """
        person = self.station.person
        assert person is not None
        signer = None if proof is None else proof.signer
        try:
            recorded = await self.station.link.record(action, person, self.traveler, signer)
        except (BackendError, rules.Refusal) as refused:  # both carry a sentence for the screen
            self.say(refused.detail, "error")
            return
        finally:
            self.station.refresh_status()
        self.save_drafts()
        if isinstance(action, RecordValue):
            self.station.forget_draft(action.item_id)  # recorded: the input starts empty again
        if isinstance(action, SignStep):
            following = rules.current_step(recorded.traveler)  # signed off: on to the next step
            self.selected = following.id if following else self.selected
        await self.show(recorded.traveler, save=False)
        self.say(recorded.message, applied_severity(action, recorded.traveler))
        self.after_applied(action, recorded.traveler)

    def after_applied(self, action: Action, traveler: Traveler) -> None:
        if isinstance(action, RecordValue):
            _step, item = rules.find_item(traveler, action.item_id)
            if item.kind is ItemKind.MEASUREMENT and item.latest and item.latest.passed is False:
                self.offer_ncr(item)

    def _early(self, check: Callable[[], object]) -> bool:
        """Run a rule locally first: instant feedback, and no request the server would refuse."""
        try:
            check()
        except rules.Refusal as refusal:
            self.say(refusal.detail, "error")
            return False
        return True

    @property
    def actor(self) -> int:
        person = self.station.person
        assert person is not None
        return person.id

    # --- data entry -------------------------------------------------------------------------------

    def on_data_item_entry_submitted(self, event: DataItemEntry.Submitted) -> None:
        step = self.step
        if step is None or not self._early(lambda: rules.ensure_in_work(self.traveler, step)):
            return
        if not self._early(lambda: rules.evaluate(event.item, event.value)):
            return
        self.send(
            RecordValue(
                actor_id=self.actor,
                traveler=self.traveler.number,
                item_id=event.item.id,
                value=event.value,
            )
        )

    def fill_scan(self, kind: ItemKind, value: str) -> bool:
        """A scanned tool or lot fills the current step's matching item and records it."""
        for entry in self.query(DataItemEntry):
            if (
                entry.item.kind is kind
                and not entry.disabled
                and (entry.item.latest is None or entry.has_focus_within)
            ):
                entry.fill(value)
                entry.post_message(DataItemEntry.Submitted(entry, entry.item, value))
                return True
        self.say(f"Scanned {value}, but the current step has no open {kind.value} item.", "warning")
        return False

    # --- step actions -----------------------------------------------------------------------------

    def action_start_step(self) -> None:
        step, person = self.step, self.station.person
        if step is None or person is None:
            return
        if self._early(
            lambda: rules.ensure_can_start(self.traveler, step, person, self.station.work_center)
        ):
            self.send(StartStep(actor_id=person.id, traveler=self.traveler.number, step_id=step.id))

    def action_pause_step(self) -> None:
        if self.step is not None:
            self.send(
                PauseStep(actor_id=self.actor, traveler=self.traveler.number, step_id=self.step.id)
            )

    def action_sign(self) -> None:
        step = self.step
        if step is None:
            return
        meaning = Meaning.PERFORMED if rules.performer(step) is None else Meaning.VERIFIED
        if not self._early(lambda: rules.ensure_not_on_hold(self.traveler)):
            return
        if meaning is Meaning.PERFORMED and not self._early(lambda: self._ready_to_sign(step)):
            return
        values = "\n".join(
            f"  {i.label}: {i.latest.value if i.latest else '-'}" for i in step.items
        )
        summary = f"{self.traveler.number} step {step.number} {step.title} (rev {step.revision})\n{values}"

        def signed(proof: Proof | None) -> None:
            if proof is not None:
                action = SignStep(
                    actor_id=self.actor,
                    traveler=self.traveler.number,
                    step_id=step.id,
                    meaning=meaning,
                    **proof.fields(),
                )
                self.send(action, proof)

        heading = "Inspector buy-off" if meaning is Meaning.VERIFIED else "Sign off step"
        self.app.push_screen(self._sign_off(heading, summary, meaning), signed)

    def _sign_off(self, heading: str, summary: str, meaning: Meaning) -> SignOffScreen[Proof]:
        return SignOffScreen(heading, summary, meaning.value, self.station.link.identify)

    def _ready_to_sign(self, step: Step) -> None:
        needs = rules.outstanding(step)
        if needs:
            raise rules.Refusal(
                "step_incomplete", f"Step {step.number} cannot be signed: " + "; ".join(needs)
            )

    # --- NCRs and holds ---------------------------------------------------------------------------

    def offer_ncr(self, item: DataItem) -> None:
        value = item.latest.value if item.latest else "?"
        description = (
            f"{item.label} {value} {item.unit or ''} outside {rules.limits_text(item)}".replace(
                "  ", " "
            )
        )
        self._ask_ncr(f"{item.label} out of tolerance", description, "DIM", item.id)

    def action_raise_ncr(self) -> None:
        step = self.step
        if step is not None:
            # A failure stays on record even after a passing re-measure: the NCR must name it.
            failed = next(
                (
                    i
                    for i in step.items
                    if not i.ncr_number
                    and (i.failed_before or (i.latest is not None and i.latest.passed is False))
                ),
                None,
            )
            if failed is not None:
                self.offer_ncr(failed)
            else:
                self._ask_ncr(f"step {step.number}", "", "", None)

    def _ask_ncr(self, context: str, description: str, code: str, item_id: int | None) -> None:
        step_id = self.selected

        def raised(draft: NcrDraft | None) -> None:
            if draft is None:
                self.say(
                    "No NCR raised. The out-of-tolerance value blocks sign-off until one is.",
                    "warning",
                )
                return
            self.send(
                RaiseNcr(
                    actor_id=self.actor,
                    traveler=self.traveler.number,
                    item_id=item_id,
                    step_id=None if item_id else step_id,
                    description=draft.description,
                    defect_code=draft.defect_code,
                    quantity=draft.quantity,
                )
            )

        self.app.push_screen(NcrScreen(context, description, code), raised)

    def action_hold(self) -> None:
        person = self.station.person
        if person is None:
            return
        if self.traveler.hold is not None:
            self._release_hold()
            return
        if not self._early(lambda: rules.require_role(person, rules.HOLD_ROLES, "place a hold")):
            return

        def placed(reason: str | None) -> None:
            if reason:
                self.send(
                    PlaceHold(actor_id=person.id, traveler=self.traveler.number, reason=reason)
                )

        self.app.push_screen(
            PromptScreen(
                f"Place {self.traveler.number} on hold",
                "Reason (at least 3 characters):",
                min_length=3,
            ),
            placed,
        )

    def _release_hold(self) -> None:
        hold = self.traveler.hold
        assert hold is not None

        def released(proof: Proof | None) -> None:
            if proof is not None:
                release = ReleaseHold(
                    actor_id=self.actor, traveler=self.traveler.number, **proof.fields()
                )
                self.send(release, proof)

        summary = f"{self.traveler.number}: release hold '{hold.reason}'"
        self.app.push_screen(
            self._sign_off("Release hold (supervisor or quality)", summary, Meaning.APPROVED),
            released,
        )

    def action_disposition(self) -> None:
        ncr = next((n for n in self.traveler.ncrs if n.status == "open"), None)
        if ncr is None:
            self.say("No open NCR on this traveler.", "info")
            return
        choices = [(d.value, d.value.replace("_", " ")) for d in Disposition]

        def chosen(choice: str | None) -> None:
            if choice is None:
                return

            def signed(proof: Proof | None) -> None:
                if proof is not None:
                    self.send(self._disposition(ncr.number, Disposition(choice), proof), proof)

            summary = f"{ncr.description}\nDisposition: {choice}"
            self.app.push_screen(
                self._sign_off(f"Disposition {ncr.number}", summary, Meaning.APPROVED), signed
            )

        self.app.push_screen(
            ChoiceScreen(f"Disposition {ncr.number}", ncr.description, choices), chosen
        )

    def _disposition(self, ncr: str, disposition: Disposition, proof: Proof) -> Action:
        return DispositionNcr(
            actor_id=self.actor,
            traveler=self.traveler.number,
            ncr=ncr,
            disposition=disposition,
            **proof.fields(),
        )

    # --- navigation -------------------------------------------------------------------------------

    @work(exclusive=True, group="action")
    async def action_refresh(self) -> None:
        try:
            traveler = await self.station.link.traveler(self.traveler.number)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        await self.show(traveler)

    def action_back(self) -> None:
        self.save_drafts()
        self.app.pop_screen()
