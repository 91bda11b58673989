"""The traveler screen: header, step list, the current step with its data items, and the actions."""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, OptionList, Static

from kiosk import rules
from kiosk.client import BackendError, NotFound
from kiosk.client.link import Proof, StationLink
from kiosk.client.reads import operation_at_work, operation_in_queue
from kiosk.messages import Scanned
from kiosk.screens.kept import KeptScreen
from kiosk.screens.ncr import (
    DispositionDraft,
    DispositionScreen,
    NcrDraft,
    NcrScreen,
    approval_summary,
)
from kiosk.screens.prompt import ChoiceScreen, PromptScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.widgets.hold_banner import HoldBanner
from kiosk.widgets.key_footer import KeyFooter
from kiosk.widgets.message_line import MessageLine, Severity
from kiosk.widgets.status_bar import StatusBar
from kiosk.widgets.step_detail import StepDetail
from kiosk.widgets.step_list import StepList
from kiosk.wire import (
    AcknowledgeRedline,
    Action,
    ApproveDeviation,
    ApproveDisposition,
    CorrectValue,
    DataItem,
    Disposition,
    DispositionNcr,
    ItemKind,
    Meaning,
    Ncr,
    Operation,
    PauseStep,
    PlaceHold,
    RaiseNcr,
    RecordValue,
    ReleaseHold,
    RequestUpload,
    SignStep,
    StartStep,
    Step,
    Traveler,
    TravelerStatus,
    TravelerSummary,
    VoidSignature,
)


def operation_of(trav: Traveler, step: Step) -> Operation | None:
    """The operation a step belongs to: the longest operation number that begins its number
    and a dot ("200.10" is in operation 200, never in operation 20)."""
    matches = [
        o
        for o in trav.operations
        if step.number == o.number or step.number.startswith(f"{o.number}.")
    ]
    return max(matches, key=lambda o: len(o.number), default=None)


def header_text(trav: Traveler, shown_step: Step | None) -> str:
    """Traveler, work order, part, serial and the operation of the step shown: the header
    follows the step on screen, not where work stands (that is the step list's ▶)."""
    where = "complete" if trav.status is TravelerStatus.COMPLETE else "-"
    if shown_step is not None:
        op = operation_of(trav, shown_step)
        where = f"Op {op.number} {op.name}" if op else f"step {shown_step.number}"
    ident = trav.serial or trav.lot or "-"
    if trav.asset is not None:  # a maintenance task: the asset stands where a serial would
        ident = f"{trav.asset.id} task {trav.task}" if trav.task else trav.asset.id
    if trav.status in rules.ENDED_WORDS:  # the first thing anyone must see: it is off the line
        where = f"✘ {rules.ENDED_WORDS[trav.status].upper()}"
    return f"{trav.number} · {trav.work_order} · {trav.part_number} {trav.part_name} · {ident} · {where}"


def in_window(trav: Traveler, operation: str | None) -> Traveler:
    """Only the steps of `operation` (all of them when None): a whole traveler that comes back
    after an action is shown one operation at a time, as it was read."""
    if operation is None:
        return trav
    steps = tuple(s for s in trav.steps if (o := operation_of(trav, s)) and o.number == operation)
    if not steps or len(steps) == len(trav.steps):
        return trav
    ops = tuple(o for o in trav.operations if o.number == operation)
    return trav.model_copy(update={"steps": steps, "operations": ops})


async def read_for_work(
    link: StationLink, number: str, row: TravelerSummary | None = None
) -> tuple[Traveler, str | None]:
    """The traveler as it opens: only the operation where its work stands when the station's
    queue says which (a 5,000-step routing is read ten or twenty steps at a time), else whole.
    `row`: its row in the queue on screen, if there is one: no need to ask the server where
    (unless the row is out of date). Answers the traveler and the operation read (None: all)."""
    number = number.strip().upper()
    if row is not None and row.number == number:
        found = await _read_open_operation(link, number, operation_in_queue(row))
        if found is not None:
            return found
    if link.online is not False:
        operation = await operation_at_work(link.client, number)
        found = await _read_open_operation(link, number, operation)
        if found is not None:
            return found
    return await link.traveler(number), None


async def _read_open_operation(
    link: StationLink, number: str, operation: str | None
) -> tuple[Traveler, str | None] | None:
    """Operation `operation` of the traveler, if it has a step not complete; else None."""
    if operation is None:
        return None
    trav = await link.traveler(number, operation=operation)
    if trav.steps and rules.current_step(trav) is not None:
        return trav, operation
    return None


async def read_step(link: StationLink, number: str, wanted: str) -> tuple[Traveler, str | None]:
    """The operation holding step `wanted`, or operation `wanted` itself; NotFound (in words)
    when the traveler has neither. Answers the traveler and the operation read."""
    try:
        probe = await link.client.traveler(number, first=wanted, last=wanted)
    except NotFound:
        probe = await link.client.traveler(number, operation=wanted)
        if not probe.steps:
            raise NotFound(f"{number} has no step or operation {wanted}.") from None
        return await link.traveler(number, operation=wanted), wanted
    op = operation_of(probe, probe.steps[0]) if probe.steps else None
    if op is None:
        return await link.traveler(number), None
    return await link.traveler(number, operation=op.number), op.number


async def read_beside(
    link: StationLink, number: str, edge: Step, direction: int
) -> tuple[Traveler, str, str] | None:
    """The operation before (`direction` -1) or after (+1) the one holding step `edge`, and the
    step beside it there; None at either end of the routing. The neighbour is found by reading
    the steps from `edge` on (or up to it): a move between operations, never a scan, pays that."""
    if direction < 0:
        span = await link.client.traveler(number, last=edge.number)
    else:
        span = await link.client.traveler(number, first=edge.number)
    beyond = [s for s in span.steps if s.id != edge.id]
    if not beyond:
        return None
    neighbour = beyond[-1] if direction < 0 else beyond[0]
    op = operation_of(span, neighbour)
    if op is None:
        return None
    return await link.traveler(number, operation=op.number), op.number, neighbour.number


def first_to_show(trav: Traveler) -> int | None:
    """Where work stands (the first step not complete), else the first step listed."""
    step = rules.current_step(trav) or (trav.steps[0] if trav.steps else None)
    return None if step is None else step.id


def applied_severity(action: Action, traveler: Traveler) -> Severity:
    """An out-of-tolerance value is recorded, yet no good news: a warning, not a green tick."""
    if isinstance(action, RecordValue):
        _step, item = rules.find_item(traveler, action.item_id)
        if item.latest is not None and item.latest.passed is False:
            return "warning"
    return "ok"


class TravelerScreen(KeptScreen):
    BINDINGS = [
        Binding("f2", "start_step", "Start"),
        Binding("f3", "pause_step", "Pause"),
        Binding("f5", "sign", "Sign off"),
        Binding("f6", "raise_ncr", "NCR"),
        Binding("f7", "hold", "Hold"),
        Binding("f8", "disposition", "Dispo", show=False),
        Binding("f4", "refresh", "Refresh", show=False),
        Binding("ctrl+g", "go_to_step", "Step #"),
        Binding("escape", "back", "Queue"),
        Binding("f10", "app.sign_out", "Sign out"),
        Binding("f1", "andon", "Help/stop", show=False),
        Binding("ctrl+t", "handoff", "Traveler code", show=False),
        Binding("ctrl+l", "acknowledge_redline", "Ack redline", show=False),
        Binding("ctrl+r", "correct_value", "Correct"),
        Binding("ctrl+n", "void_signature", "Void"),  # shown to quality only (check_action)
        # Shown to a quality person (or a deviation's second approver) only: check_action.
        Binding("ctrl+y", "approve_deviation", "Deviation"),
        Binding("ctrl+o", "documents", "Drawing"),
        Binding("ctrl+f", "upload", "Photo", show=False),
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

    def __init__(self, traveler: Traveler, operation: str | None = None) -> None:
        super().__init__()
        self.traveler = in_window(traveler, operation)
        self.operation = operation
        """The operation whose steps are read and listed; None: the whole traveler."""
        self.selected = first_to_show(self.traveler)

    def compose(self) -> ComposeResult:
        yield Static(header_text(self.traveler, self.step), id="traveler-header", markup=False)
        yield HoldBanner(id="hold")
        with Horizontal(id="work"):
            yield StepList(id="steps")
            yield Vertical(id="detail-pane")
        yield MessageLine(id="message")
        yield StatusBar()
        yield KeyFooter(compact=True)  # every key fits at 80 columns, ^g too

    async def on_mount(self) -> None:
        self.station.note_revisions(self.traveler, acknowledge=True)
        await self.show(self.traveler)

    async def open(self, traveler: Traveler, operation: str | None) -> None:
        """Another traveler (or another part of this one) in this screen, as if newly opened:
        the station keeps one traveler screen, since composing one costs more than the read.
        Drafts need no saving: each keystroke reaches the station's session."""
        self.traveler, self.operation = in_window(traveler, operation), operation
        self.selected = first_to_show(self.traveler)
        self.station.note_revisions(self.traveler, acknowledge=True)
        await self.show(self.traveler)

    # --- drawing ----------------------------------------------------------------------------------

    @property
    def step(self) -> Step | None:
        return self.step_in(self.traveler)

    def step_in(self, traveler: Traveler) -> Step | None:
        return next((s for s in traveler.steps if s.id == self.selected), None)

    async def show(self, traveler: Traveler) -> None:
        traveler = in_window(traveler, self.operation)
        if self.step_in(traveler) is None:
            self.selected = first_to_show(traveler)
        self.traveler = traveler
        # Whatever brought this traveler (a refresh, the answer to an action): a step whose
        # instructions changed revision since they were shown must be acknowledged first.
        self.station.note_revisions(
            traveler, acknowledge=False, on_acknowledge=self._acknowledge_first_redline
        )
        self.query_one("#traveler-header", Static).update(header_text(traveler, self.step))
        self.query_one(HoldBanner).show_hold(traveler.hold)
        self.query_one(StepList).show_steps(traveler.steps, self.selected)
        await self._show_detail()
        self.refresh_bindings()  # the deviation key follows who is here and what awaits them

    async def _show_detail(self, *, focus_entry: bool = True) -> None:
        pane = self.query_one("#detail-pane", Vertical)
        step = self.step
        shown = pane.query(StepDetail)
        if step is None:
            await pane.remove_children()
            return
        editable = self.traveler.status not in (
            TravelerStatus.ON_HOLD, TravelerStatus.SCRAPPED, TravelerStatus.RETURNED
        )  # fmt: skip
        drafts = self.station.drafts_for(step)
        devs = "\n".join(rules.deviation_text(d) for d in rules.step_deviations(self.traveler, step))
        if shown:  # the same widgets, filled with this step: mounting anew costs most of a paint
            await shown.first().show_step(step, drafts, editable=editable, deviations=devs)
        else:
            await pane.mount(StepDetail(step, drafts, editable=editable, deviations=devs))
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

    @on(OptionList.OptionHighlighted, "#steps")
    async def step_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        step_id = self.query_one(StepList).highlighted_step_id()
        if step_id is not None and step_id != self.selected:
            self.selected = step_id
            self.query_one("#traveler-header", Static).update(header_text(self.traveler, self.step))
            # Someone moving through the step list keeps the focus there; taking it into the
            # step's first input would stop the arrows at the first step in work.
            await self._show_detail(focus_entry=False)

    # --- sending actions --------------------------------------------------------------------------

    @work(exclusive=True, group="action")
    async def send(self, action: Action, proof: Proof | None = None) -> None:
        """Record `action` in the station's outbox and show it.

        A signature arrives with its proof (the sign-off prompt checked badge + PIN): the PIN
        went no further than that check; the outbox gets the server's signing ticket (online)
        or a MAC only the signer's badge and PIN could make (offline, from the credential cache).
        """
        session = self.station.session
        assert session is not None
        try:
            recorded = await self.station.link.record(action, session, self.traveler, proof)
        except (BackendError, rules.Refusal) as refused:  # both carry a sentence for the screen
            self.say(refused.detail, "error")
            return
        finally:
            self.station.refresh_status()
        if isinstance(action, RecordValue):
            self.station.forget_draft(action.item_id)  # recorded: the input starts empty again
        traveler = recorded.traveler
        if isinstance(action, SignStep):
            traveler = await self._next_operation_if_done(traveler)
            following = rules.current_step(traveler)  # signed off: on to the next step
            self.selected = following.id if following else self.selected
        await self.show(traveler)
        self.say(recorded.message, applied_severity(action, recorded.traveler))
        self.after_applied(action, recorded.traveler)

    async def _next_operation_if_done(self, traveler: Traveler) -> Traveler:
        """The last step of the operation listed is signed: list where work stands now."""
        if self.operation is None or rules.current_step(in_window(traveler, self.operation)):
            return traveler
        try:
            following, self.operation = await read_for_work(self.station.link, traveler.number)
        except BackendError:
            return traveler  # offline: the signed operation stays listed
        return following

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
        wc = self.station.work_center
        if step is None or not self._early(
            lambda: rules.ensure_can_record(self.traveler, step, wc)
        ):
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

    def on_scanned(self, message: Scanned) -> None:
        """A tool or lot fills the step; a badge changes who works here and keeps the traveler
        open (someone arriving to disposition or buy off); the rest goes on to the app."""
        if message.kind in ("tool", "material"):
            message.stop()
            self.fill_scan(ItemKind(message.kind), message.value)
        elif message.kind == "badge":
            message.stop()
            self.take_over(message.value)

    @work(exclusive=True, group="take-over")
    async def take_over(self, badge: str) -> None:
        if await self.station.switch_person(badge):
            self.refresh_bindings()  # the void key is quality's
            await self.show(self.traveler)  # the newcomer's drafts, not the last one's

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

    def action_acknowledge_redline(self) -> None:
        """Ctrl+L: the operator has read the step's redline; recorded like any action of theirs."""
        step = self.step
        if step is not None and not step.redlines:
            self.say(f"Step {step.number} has no redline to acknowledge.", "info")
        elif step is not None:
            self._acknowledge(step)

    def _acknowledge_first_redline(self) -> None:
        step = next((s for s in self.traveler.steps if s.redlines), None)
        if step is not None:
            self._acknowledge(step)

    def _acknowledge(self, step: Step) -> None:
        person = self.station.person
        if person is None:
            return
        self.send(
            AcknowledgeRedline(
                actor_id=person.id,
                traveler=self.traveler.number,
                step_id=step.id,
                redline_id=step.redlines[0].id,
            )
        )

    def action_andon(self) -> None:
        from kiosk.screens.andon import call_supervisor

        call_supervisor(self)

    def action_handoff(self) -> None:
        from kiosk.screens.handoff import HandoffScreen

        self.app.push_screen(HandoffScreen(self.traveler.number))

    def action_documents(self) -> None:
        """The shown step's drawings and specifications, at the revisions it names."""
        step = self.step
        if step is None or not step.documents:
            self.say("This step names no drawing or document.")
            return
        from kiosk.screens.document import DocumentScreen

        self.app.push_screen(DocumentScreen(self.station.link, step.documents))

    def action_upload(self) -> None:
        """Ctrl+F: the upload code for the step's photo or file item (the focused one, else the
        first with nothing on record), asked for on the signed-in person's session."""
        from kiosk.screens.upload import UploadScreen

        step, session = self.step, self.station.session
        if step is None or session is None:
            return
        items = [i for i in step.items if i.kind in rules.EVIDENCE_TYPES]
        focused = next((e.item for e in self.query(DataItemEntry) if e.has_focus_within), None)
        item = focused if focused in items else next((i for i in items if i.latest is None), None)
        item = item or (items[0] if items else None)
        if item is None:
            self.say(f"Step {step.number} has no photo or file to record.", "warning")
            return
        person, wc = session.person, self.station.work_center
        if not self._early(lambda: rules.ensure_can_attach(self.traveler, item.id, person, wc)):
            return
        if session.token is None:
            self.say("A photo needs the server: it is out of reach now. Try again soon.", "error")
            return
        request = RequestUpload(
            actor_id=person.id, traveler=self.traveler.number, item_id=item.id, session=session.token
        )

        def closed(arrived: bool | None) -> None:
            if arrived:
                self.action_refresh()

        self.app.push_screen(UploadScreen(self.station.link.client, request, item), closed)

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
        if not self._early(lambda: rules.ensure_redlines_acknowledged(step)):
            return  # said before the badge and PIN are asked for, not after
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
        code = rules.default_defect_code(item, self._defect_codes)
        self._ask_ncr(f"{item.label} out of tolerance", description, code, item.id)

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

        self.app.push_screen(NcrScreen(context, description, code, self._defect_codes), raised)

    @property
    def _defect_codes(self) -> dict[str, str] | None:
        info = self.station.info
        return None if info is None else info.defect_codes

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
                release = ReleaseHold(actor_id=self.actor, traveler=self.traveler.number)
                self.send(release, proof)

        summary = f"{self.traveler.number}: release hold '{hold.reason}'"
        self.app.push_screen(
            self._sign_off("Release hold (supervisor or quality)", summary, Meaning.APPROVED),
            released,
        )

    def action_disposition(self) -> None:
        """F8: disposition the open NCR, or give the second approval one is waiting for."""
        waiting = next((n for n in self.traveler.ncrs if n.status == "awaiting_approval"), None)
        if waiting is not None:
            self._approve(waiting)
            return
        ncr = next((n for n in self.traveler.ncrs if n.status == "open"), None)
        if ncr is None:
            self.say("No open NCR on this traveler.", "info")
            return
        choices = [(d.value, d.value.replace("_", " ")) for d in Disposition]

        def chosen(choice: str | None) -> None:
            if choice is not None:
                self.app.push_screen(DispositionScreen(ncr, Disposition(choice)), described)

        def described(draft: DispositionDraft | None) -> None:
            if draft is None:
                return

            def signed(proof: Proof | None) -> None:
                if proof is not None:
                    self.send(self._disposition(ncr.number, draft), proof)

            self.app.push_screen(
                self._sign_off(f"Disposition {ncr.number}", draft.summary(ncr), Meaning.APPROVED),
                signed,
            )

        self.app.push_screen(
            ChoiceScreen(f"Disposition {ncr.number}", ncr.description, choices), chosen
        )

    def _disposition(self, ncr: str, draft: DispositionDraft) -> Action:
        return DispositionNcr(
            actor_id=self.actor,
            traveler=self.traveler.number,
            ncr=ncr,
            disposition=draft.disposition,
            rationale=draft.rationale,
            instructions=draft.instructions,
        )

    def _approve(self, ncr: Ncr) -> None:
        def signed(proof: Proof | None) -> None:
            if proof is not None:
                approve = ApproveDisposition(
                    actor_id=self.actor, traveler=self.traveler.number, ncr=ncr.number
                )
                self.send(approve, proof)

        role = (ncr.approval_role or rules.SECOND_APPROVER).value
        summary = approval_summary(ncr)
        heading = f"Second approval of {ncr.number} ({role})"
        self.app.push_screen(self._sign_off(heading, summary, Meaning.APPROVED), signed)

    # --- corrections and voids (rules.ensure_correctable, rules._check_void) ------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys only some people have: void (quality), approve a deviation (its approvers)."""
        person = self.station.person
        if action == "void_signature":
            return person is not None and rules.has_role(person, rules.VOID_ROLES)
        if action == "approve_deviation":
            return person is not None and bool(rules.awaiting_approval_by(self.traveler, person))
        return True

    def _item_to_correct(self, step: Step) -> DataItem | None:
        """The item whose entry has the focus, else the last item with a value on record."""
        focused = next((e.item for e in self.query(DataItemEntry) if e.has_focus_within), None)
        if focused is not None and focused.latest is not None:
            return focused
        return next((i for i in reversed(step.items) if i.latest is not None), focused)

    def action_correct_value(self) -> None:
        """Ctrl+R: correct the selected item's value before sign-off: new value, then why."""
        step = self.step
        item = None if step is None else self._item_to_correct(step)
        if step is None or item is None:
            self.say("No recorded value on this step to correct.", "info")
            return
        wc = self.station.work_center
        if not self._early(lambda: rules.ensure_correctable(self.traveler, step, item, wc)):
            return
        old = item.latest.value if item.latest else ""

        def typed(value: str | None) -> None:
            if not value or not self._early(lambda: rules.evaluate(item, value)):
                return

            def explained(reason: str | None) -> None:
                if reason:
                    self.send(CorrectValue(actor_id=self.actor, traveler=self.traveler.number,
                                           item_id=item.id, corrects=old, value=value,
                                           reason=reason))  # fmt: skip

            self.app.push_screen(
                PromptScreen(f"Correct {item.label}: {old} -> {value}",
                             "Reason for the correction (at least 3 characters):", min_length=3),
                explained,
            )  # fmt: skip

        self.app.push_screen(
            PromptScreen(f"Correct {item.label} on step {step.number}",
                         f"Recorded: {old}. The value it should be:"),
            typed,
        )  # fmt: skip

    def action_void_signature(self) -> None:
        """Ctrl+N (quality): void the step's buy-off, or its sign-off and the buy-off after it."""
        step = self.step
        if step is None or not step.signatures:
            self.say("This step has no signature to void.", "info")
            return
        choices = [(s.meaning.value, f"{s.meaning.value} by {s.printed_name}"
                    + (" (and the buy-off after it)" if len(rules.voided_by(step, s.meaning)) > 1
                       else "")) for s in step.signatures]  # fmt: skip

        def chosen(meaning: str | None) -> None:
            if meaning is None:
                return

            def explained(reason: str | None) -> None:
                if reason:
                    self._sign_void(step, Meaning(meaning), reason)

            self.app.push_screen(
                PromptScreen(f"Void the {meaning} signature on step {step.number}",
                             "Reason for the void (at least 3 characters):", min_length=3),
                explained,
            )  # fmt: skip

        if len(choices) == 1:
            chosen(choices[0][0])
            return
        self.app.push_screen(
            ChoiceScreen(f"Void a signature on step {step.number}", step.title, choices), chosen
        )

    def _sign_void(self, step: Step, meaning: Meaning, reason: str) -> None:
        def signed(proof: Proof | None) -> None:
            if proof is not None:
                void = VoidSignature(actor_id=self.actor, traveler=self.traveler.number,
                                     step_id=step.id, meaning=meaning, reason=reason)  # fmt: skip
                self.send(void, proof)

        gone = ", ".join(f"{s.meaning.value} by {s.printed_name}" for s in rules.voided_by(step, meaning))
        summary = f"{self.traveler.number} step {step.number}: void {gone}\nReason: {reason}"
        heading = f"Void signature on step {step.number} (quality)"
        self.app.push_screen(SignOffScreen(heading, summary, "void", self.station.link.identify), signed)

    # --- deviations -------------------------------------------------------------------------------

    def action_approve_deviation(self) -> None:
        """Ctrl+Y: approve, by signature, a deviation on this traveler (those of the step on
        screen first); with several, choose which."""
        person = self.station.person
        if person is None:
            return
        waiting = rules.awaiting_approval_by(self.traveler, person)
        step = self.step
        here = [d for d in rules.step_deviations(self.traveler, step) if d in waiting] if step else []
        waiting = here or waiting
        if not waiting:
            self.say("No deviation on this traveler awaits your approval.", "info")
            return
        if len(waiting) == 1:
            self._approve_deviation(waiting[0].number)
            return

        def chosen(number: str | None) -> None:
            if number is not None:
                self._approve_deviation(number)

        choices = [(d.number, rules.deviation_text(d)) for d in waiting]
        self.app.push_screen(ChoiceScreen("Approve a deviation", "", choices), chosen)

    def _approve_deviation(self, number: str) -> None:
        dev = rules.find_deviation(self.traveler, number)

        def signed(proof: Proof | None) -> None:
            if proof is not None:
                approve = ApproveDeviation(
                    actor_id=self.actor, traveler=self.traveler.number, deviation=number
                )
                self.send(approve, proof)

        second = " (second approval)" if dev.status == "awaiting_approval" else ""
        summary = f"{rules.deviation_text(dev)}\nWhy: {dev.reason}\nRaised by {dev.raised_by}"
        heading = f"Approve {dev.number}{second}"
        self.app.push_screen(self._sign_off(heading, summary, Meaning.APPROVED), signed)

    # --- navigation -------------------------------------------------------------------------------

    @work(exclusive=True, group="action")
    async def action_refresh(self) -> None:
        try:
            number = self.traveler.number
            traveler = await self.station.link.traveler(number, operation=self.operation)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        await self.show(traveler)

    @on(StepList.PastEnd)
    def past_end(self, event: StepList.PastEnd) -> None:
        if self.operation is not None and self.traveler.steps:
            self.beside(event.direction)

    @work(exclusive=True, group="action")
    async def beside(self, direction: int) -> None:
        """The arrows past the first or last step listed: the operation before or after."""
        steps = self.traveler.steps
        edge = steps[0] if direction < 0 else steps[-1]
        try:
            found = await read_beside(self.station.link, self.traveler.number, edge, direction)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        if found is None:
            end = "first" if direction < 0 else "last"
            self.say(f"This is the {end} operation of {self.traveler.number}.")
            return
        traveler, operation, number = found
        self.traveler, self.operation = in_window(traveler, operation), operation
        step = next((s for s in self.traveler.steps if s.number == number), None)
        self.selected = step.id if step else first_to_show(self.traveler)
        await self.show(self.traveler)

    def action_go_to_step(self) -> None:
        """Ctrl+G: a step by its number (or an operation by its own), read if not listed."""

        def chosen(wanted: str | None) -> None:
            if wanted:
                self.go_to_step(wanted)

        self.app.push_screen(
            PromptScreen(
                f"Go to a step of {self.traveler.number}",
                "Step number (as 200.10), or an operation number (as 200):",
            ),
            chosen,
        )

    @work(exclusive=True, group="action")
    async def go_to_step(self, wanted: str) -> None:
        wanted = wanted.strip()
        listed = next((s for s in self.traveler.steps if s.number == wanted), None)
        if listed is None:
            try:
                traveler, operation = await read_step(
                    self.station.link, self.traveler.number, wanted
                )
            except BackendError as exc:
                self.say(exc.detail, "error")
                return
            self.traveler, self.operation = in_window(traveler, operation), operation
            listed = next((s for s in self.traveler.steps if s.number == wanted), None)
            self.selected = listed.id if listed else first_to_show(self.traveler)
        else:
            self.selected = listed.id
        await self.show(self.traveler)
        self.query_one(StepList).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
