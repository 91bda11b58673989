"""Write side: applies one station action to the store, after the rules in `kiosk.rules` agree.

Every handler runs inside the caller's transaction, checks before it writes, and appends an audit
record for each change, so a refusal leaves nothing behind. A record of a row that matters (a
value, a signature, a consumed lot, a tool use, an NCR, a hold) carries the row's every column,
so `kiosk audit verify` can re-derive the row from the chain and name any that disagrees.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import (
    andon,
    audit,
    corrections,
    deviations,
    kept,
    labour,
    quality,
    records,
    redlines,
    values_behind,
    views,
)
from kiosk.server import schema as t
from kiosk.wire import (
    AcknowledgeAndon,
    Action,
    ActionApplied,
    ActionResult,
    ApproveDeviation,
    ApproveDisposition,
    CorrectValue,
    DispositionNcr,
    EvidenceFile,
    ItemKind,
    Meaning,
    PauseStep,
    Person,
    PlaceHold,
    RaiseAndon,
    RaiseNcr,
    RecordedValue,
    RecordValue,
    ReleaseHold,
    ResolveAndon,
    SignStep,
    StartStep,
    Step,
    StepStatus,
    Tool,
    Traveler,
    VoidSignature,
)


@dataclass(frozen=True)
class StationRef:
    id: int
    name: str
    work_center: str


@dataclass
class Change:
    """Everything a handler needs: the open transaction, who, where, when."""

    conn: Connection
    station: StationRef
    actor: Person
    signer: Person | None
    now: datetime
    station_time: datetime | None
    offline: bool

    def audit(self, action: str, entity: str, old: Any = None, new: Any = None) -> None:
        who = self.actor.name if self.signer is None else self.signer.name
        audit.append(
            self.conn,
            action=action,
            entity=entity,
            actor=who,
            station=self.station.name,
            old=old,
            new=new,
            station_time=self.station_time,
            now=self.now,
        )

    def insert(self, action: str, kind: str, values: dict[str, Any], old: Any = None) -> int:
        """Insert a row that matters and record all of it in the audit trail."""
        row_id = int(self.conn.execute(_inserting(kind), values).scalar_one())
        self.audit(action, f"{kind}:{row_id}", old, records.state(values))
        return row_id

    def insert_value(self, action: str, row: dict[str, Any], old: Any, failed: bool) -> int:
        """Insert a value, make it its item's latest (and whether any value failed), and record
        it. A group's values are written together as it commits (kiosk.server.values_behind).
        Any other is written now: on PostgreSQL in one statement, as each is a round trip there,
        0.2-0.5 ms on a loaded host; SQLite cannot write inside a WITH, and its two statements
        are calls in the process."""
        value_id = values_behind.take(self.conn, row, failed)
        if value_id is None:
            value_id = self._insert_value_now(row, failed)
        self.audit(action, f"value:{value_id}", old, records.state(row))
        return value_id

    def _insert_value_now(self, row: dict[str, Any], failed: bool) -> int:
        if self.conn.dialect.name == "postgresql":
            given = {f"v_{column}": value for column, value in row.items()}
            query = _value_made_latest(tuple(row))
            return int(self.conn.execute(query, {**given, "now_failed": failed}).scalar_one())
        value_id = int(self.conn.execute(_inserting("value"), row).scalar_one())
        latest = {"item": row["item_id"], "latest": value_id, "now_failed": failed}
        self.conn.execute(values_behind.MADE_LATEST, latest)
        return value_id

    def amend(self, action: str, kind: str, row_id: int, values: dict[str, Any]) -> None:
        """Change columns of a row that matters, recording the change."""
        table = records.TRACKED[kind]
        self.conn.execute(update(table).where(table.c.id == row_id).values(**values))
        self.audit(action, f"{kind}:{row_id}", None, records.state(values))


_INSERTS: dict[str, Any] = {}
_VALUES_MADE_LATEST: dict[tuple[str, ...], Any] = {}


def _inserting(kind: str) -> Any:
    """INSERT … RETURNING id for a tracked table, built once: the values come with each call."""
    found = _INSERTS.get(kind)
    if found is None:
        table = records.TRACKED[kind]
        found = _INSERTS[kind] = insert(table).returning(table.c.id)
    return found


def _value_made_latest(columns: tuple[str, ...]) -> Any:
    """WITH new_value AS (INSERT … RETURNING) UPDATE data_items … FROM new_value, built once for
    each set of columns a value is given (PostgreSQL)."""
    found = _VALUES_MADE_LATEST.get(columns)
    if found is None:
        values = t.recorded_values
        new = (
            insert(values)
            .values({column: bindparam(f"v_{column}") for column in columns})
            .returning(values.c.id, values.c.item_id)
            .cte("new_value")
        )
        found = _VALUES_MADE_LATEST[columns] = (
            update(t.data_items)
            .where(t.data_items.c.id == new.c.item_id)
            .values(latest_value_id=new.c.id, failed=bindparam("now_failed"))
            .returning(new.c.id)
        )
    return found


def apply(change: Change, action: Action, *, with_traveler: bool = True) -> ActionApplied:
    """Check and apply `action`. Batches skip re-reading the traveler afterwards: a station
    draining its outbox needs only the answer, and it halves the work per action. The row and
    the view of a value in a batch may be what the value before it left (kiosk.server.kept)."""
    trav_row = kept.traveler_row(change.conn, action)
    before = kept.rules_view(change.conn, trav_row, action)
    rules.check(before, action, change.actor, change.signer, change.station.work_center)
    message = HANDLERS[action.kind](change, before, trav_row.id, action)
    if not with_traveler:
        return ActionApplied(applied=action.kind, message=message)
    after = views.load_traveler(change.conn, action.traveler)
    return ActionResult(applied=action.kind, traveler=after, message=message)


# --- step handlers --------------------------------------------------------------------------------


def start_step(change: Change, trav: Traveler, tid: int, action: StartStep) -> str:
    step = rules.find_step(trav, action.step_id)
    joined = labour.clock_on(change, trav, tid, step)  # start and resume clock the actor on
    if step.status is StepStatus.IN_WORK:
        if joined:
            return f"{change.actor.name} clocked on step {step.number}."
        return f"Step {step.number} is in work."
    _set_step_status(change, step, StepStatus.IN_WORK)
    verb = "resumed" if step.status is StepStatus.PAUSED else "started"
    return f"Step {step.number} {verb}."


def pause_step(change: Change, trav: Traveler, _tid: int, action: PauseStep) -> str:
    step = rules.find_step(trav, action.step_id)
    if not rules.pause_pauses_step(trav, step.id, change.actor):
        labour.clock_off(change, step.id, "paused", change.actor)
        return f"{change.actor.name} clocked off step {step.number}; others are still on it."
    labour.clock_off(change, step.id, "paused")
    _set_step_status(change, step, StepStatus.PAUSED)
    return f"Step {step.number} paused."


def _set_step_status(change: Change, step: Step, status: StepStatus) -> None:
    change.conn.execute(update(t.steps).where(t.steps.c.id == step.id).values(status=status.value))
    change.audit("step_status", f"step:{step.id}", step.status.value, status.value)
    if status is StepStatus.COMPLETE:
        views.keep_current_step(change.conn, _traveler_of(change.conn, step.id))


def _traveler_of(conn: Connection, step_id: int) -> int:
    return int(
        conn.execute(select(t.steps.c.traveler_id).where(t.steps.c.id == step_id)).scalar_one()
    )


def record_value(change: Change, trav: Traveler, tid: int, action: RecordValue) -> str:
    step, item = rules.find_item(trav, action.item_id)
    day = rules.acting_day(action)
    judged = rules.judge(trav, step, item, action.value, day)
    value, passed, relied = judged.value, judged.passed, judged.deviation
    if item.kind is ItemKind.TOOL:
        value, tool_id = _calibrated_tool(change, value)
    elif item.kind is ItemKind.MATERIAL:
        value, lot_id, relied = _known_lot(change, value, trav, step, item, day)
    if relied is not None:
        deviations.claim(change.conn, relied, trav, day)
    row = {
        "item_id": item.id,
        "value": value,
        "passed": passed,
        "user_id": change.actor.id,
        "station_id": change.station.id,
        "server_time": change.now,
        "station_time": change.station_time,
        "offline": change.offline,
    }
    if relied is not None:  # only then: values relying on none keep the records they had
        row["deviation"] = relied
    old = None if item.latest is None else item.latest.value
    failed = item.failed_before or passed is False
    value_id = change.insert_value("record_value", row, old, failed)
    plain = item.kind not in (ItemKind.TOOL, ItemKind.MATERIAL) and relied is None
    latest = _as_latest(change, value_id, value, passed) if plain else None
    kept.value_recorded(change.conn, action.traveler, item.id, latest, failed)
    link = {"traveler_id": tid, "value_id": value_id}
    if item.kind is ItemKind.TOOL:
        change.insert("use_tool", "tool_use", {**link, "tool_id": tool_id})
    elif item.kind is ItemKind.MATERIAL:
        change.insert("consume_lot", "consumption", {**link, "lot_id": lot_id})
    said = _recorded_message(item.label, value, passed, item)
    if relied is not None:
        return f"{said[:-1]}, under {relied}."
    return f"{said} {judged.note}" if judged.note else said


def _as_latest(change: Change, value_id: int, value: str, passed: bool | None) -> RecordedValue:
    """The value just recorded, as its item's latest reads (views.recorded_value)."""
    return RecordedValue(
        id=value_id,
        value=value,
        passed=passed,
        recorded_by=change.actor.name,
        server_time=change.now,
        station_time=change.station_time,
        station=change.station.name,
        offline=change.offline,
    )


def _recorded_message(label: str, value: str, passed: bool | None, item: Any) -> str:
    if item.kind is ItemKind.MEASUREMENT:
        verdict = "in tolerance" if passed else "OUT OF TOLERANCE"
        return (
            f"{label}: {value} {item.unit or ''} recorded, {verdict} ({rules.limits_text(item)})."
        )
    return f"{label}: {value} recorded."


def load_tool(conn: Connection, code: str) -> tuple[Tool, int] | None:
    """A tool of the crib register by its code (upper case), with its row id."""
    row = conn.execute(select(t.tools).where(t.tools.c.code == code)).one_or_none()
    if row is None:
        return None
    tool = Tool(code=row.code, description=row.description, calibration_due=row.calibration_due)
    return tool, int(row.id)


def _calibrated_tool(change: Change, code: str) -> tuple[str, int]:
    code = code.upper()
    found = load_tool(change.conn, code)
    rules.ensure_tool_usable(code, None if found is None else found[0], change.now.date())
    assert found is not None
    return code, found[1]


def _known_lot(
    change: Change, code: str, trav: Traveler, step: Step, item: Any, day: date
) -> tuple[str, int, str | None]:
    code = code.upper()
    lot = change.conn.execute(
        select(t.material_lots).where(t.material_lots.c.code == code)
    ).one_or_none()
    if lot is None:
        raise Refusal("material_unknown", f"Material lot {code} is not known to stores.", 422)
    dev = rules.lot_deviation(trav, step, item, code, lot.part_number, day)
    return code, int(lot.id), None if dev is None else dev.number


# --- signatures -----------------------------------------------------------------------------------


def _insert_signature(
    change: Change, subject: str, subject_id: int, meaning: Meaning, digest: str
) -> int:
    assert change.signer is not None
    row = {
        "subject": subject,
        "subject_id": subject_id,
        "user_id": change.signer.id,
        "printed_name": change.signer.name,
        "meaning": meaning.value,
        "station_id": change.station.id,
        "server_time": change.now,
        "station_time": change.station_time,
        "offline": change.offline,
        "content_hash": digest,
    }
    return change.insert("sign", "signature", row)


def sign_step(change: Change, trav: Traveler, _tid: int, action: SignStep) -> str:
    assert change.signer is not None
    step = rules.find_step(trav, action.step_id)
    content = records.StepContent.of(trav, step)
    digest = content.digest(action.meaning.value, change.signer.id, change.now)
    _insert_signature(change, "step", step.id, action.meaning, digest)
    labour.clock_off(change, step.id, "signed")
    if rules.completes_step(step, action.meaning):
        _set_step_status(change, step, StepStatus.COMPLETE)
    return f"Step {step.number} signed as {action.meaning.value} by {change.signer.name}."


# --- holds and NCRs ---------------------------------------------------------------------------------


def place_hold(change: Change, trav: Traveler, tid: int, action: PlaceHold) -> str:
    _insert_hold(change, tid, action.reason, None)
    return f"{trav.number} is on hold: {action.reason}"


def _insert_hold(change: Change, tid: int, reason: str, ncr_id: int | None) -> int:
    row = {
        "traveler_id": tid,
        "reason": reason,
        "placed_by": change.actor.id,
        "placed_at": change.now,
        "ncr_id": ncr_id,
        "released_signature_id": None,
    }
    return change.insert("place_hold", "hold", row)


def release_hold(change: Change, trav: Traveler, tid: int, action: ReleaseHold) -> str:
    assert change.signer is not None
    hold = views.active_hold_row(change.conn, tid)  # rules.check saw the traveler on hold
    digest = records.hold_content_hash(hold.id, hold.reason)
    sig_id = _insert_signature(change, "hold", hold.id, Meaning.APPROVED, digest)
    change.amend("release_hold", "hold", hold.id, {"released_signature_id": sig_id})
    return f"Hold on {trav.number} released by {change.signer.name}."


def raise_ncr(change: Change, trav: Traveler, tid: int, action: RaiseNcr) -> str:
    rules.ensure_defect_code(action.defect_code, quality.settings(change.conn).defect_codes)
    step_id, item_id = action.step_id, action.item_id
    if item_id is not None:
        step, _item = rules.find_item(trav, item_id)
        step_id = step.id
    elif step_id is not None:
        rules.find_step(trav, step_id)
    row = {
        "traveler_id": tid,
        "step_id": step_id,
        "item_id": item_id,
        "description": action.description,
        "defect_code": action.defect_code,
        "quantity": action.quantity,
        "raised_by": change.actor.id,
        "raised_at": change.now,
        "disposition": None,
        "disposition_signature_id": None,
    }
    # The number comes from the row id, which the database hands out without races.
    ncr_id = change.conn.execute(
        insert(t.ncrs)
        .values(number=f"pending-{uuid.uuid4().hex[:12]}", **row)
        .returning(t.ncrs.c.id)
    ).scalar_one()
    number = f"NCR-{ncr_id:04d}"
    change.conn.execute(update(t.ncrs).where(t.ncrs.c.id == ncr_id).values(number=number))
    change.audit("raise_ncr", f"ncr:{ncr_id}", None, records.state({**row, "number": number}))
    if trav.hold is None:  # on hold already: the NCR keeps it there until dispositioned
        _insert_hold(change, tid, f"{number}: {action.description}", ncr_id)
    return f"{number} raised; {trav.number} is on hold until quality dispositions it."


def disposition_ncr(change: Change, trav: Traveler, tid: int, action: DispositionNcr) -> str:
    assert change.signer is not None
    ncr = change.conn.execute(  # rules.check found it open on this traveler
        select(t.ncrs).where(t.ncrs.c.number == action.ncr, t.ncrs.c.traveler_id == tid)
    ).one()
    said = {"rationale": action.rationale.strip(), "instructions": action.instructions.strip()}
    digest = records.disposition_content_hash(ncr.number, action.disposition.value, **said)
    sig_id = _insert_signature(change, "ncr", ncr.id, Meaning.APPROVED, digest)
    change.amend(
        "disposition_ncr",
        "ncr",
        ncr.id,
        {"disposition": action.disposition.value, "disposition_signature_id": sig_id, **said,
         "approval_role": quality.approval_role(change.conn, action.disposition)},
    )  # fmt: skip
    if rules.reworks(action.disposition.value) and ncr.step_id is not None:
        _add_rework_step(change, tid, ncr, said["instructions"])
    return quality.disposition_message(trav, ncr.number, action.disposition)


def approve_disposition(
    change: Change, trav: Traveler, _tid: int, action: ApproveDisposition
) -> str:
    ncr = rules.find_ncr(trav, action.ncr)  # rules.check found it awaiting this approval
    row = change.conn.execute(select(t.ncrs).where(t.ncrs.c.number == ncr.number)).one()
    digest = records.disposition_content_hash(
        row.number, row.disposition, rationale=row.rationale, instructions=row.instructions
    )
    sig_id = _insert_signature(change, "ncr", row.id, Meaning.APPROVED, digest)
    change.amend("approve_disposition", "ncr", row.id, {"approval_signature_id": sig_id})
    assert change.signer is not None
    return f"{ncr.number}: second approval by {change.signer.name}; the hold can be released."


def approve_deviation(change: Change, trav: Traveler, _tid: int, action: ApproveDeviation) -> str:
    assert change.signer is not None
    dev = rules.find_deviation(trav, action.deviation)  # rules.check found it awaiting this
    dev_id = deviations.row_id(change.conn, dev.number)
    digest = records.deviation_content_hash(change.conn, dev_id)
    _insert_signature(change, "deviation", dev_id, Meaning.APPROVED, digest)
    return deviations.approved_message(dev, change.signer.name)


REWORK_STEP_COLUMNS = {"number", "title", "instructions", "revision", "inspection", "certification"}


def _add_rework_step(change: Change, tid: int, ncr: Any, instructions: str = "") -> None:
    """Rework adds an inspected step right after the nonconforming one (rules.rework_step)."""
    conn = change.conn
    origin = views.load_traveler_step(conn, tid, ncr.step_id)
    failed = None
    if ncr.item_id is not None:
        failed = next(i for i in origin.items if i.id == ncr.item_id)
    step = rules.rework_step(origin, ncr.number, ncr.description, failed, instructions)
    row = conn.execute(select(t.steps).where(t.steps.c.id == ncr.step_id)).one()
    later = (t.steps.c.traveler_id == tid) & (t.steps.c.seq > row.seq)
    # Two moves keep (traveler, seq) unique at every moment, which PostgreSQL checks per row.
    conn.execute(update(t.steps).where(later).values(seq=t.steps.c.seq + 1_000_000))
    conn.execute(
        update(t.steps)
        .where((t.steps.c.traveler_id == tid) & (t.steps.c.seq > 1_000_000))
        .values(seq=t.steps.c.seq - 999_999)
    )
    step_id = conn.execute(
        insert(t.steps)
        .values(
            traveler_id=tid,
            operation_id=row.operation_id,
            seq=row.seq + 1,
            **step.model_dump(include=REWORK_STEP_COLUMNS),
            status=step.status.value,
        )
        .returning(t.steps.c.id)
    ).scalar_one()
    for n, item in enumerate(step.items, 1):
        values = item.model_dump(include={"label", "unit", "nominal", "lower", "upper", "expected"})
        conn.execute(
            insert(t.data_items).values(
                step_id=step_id, seq=n, kind=item.kind.value, required=True, **values
            )
        )
    change.audit("add_step", f"step:{step_id}", None, {"number": step.number, "ncr": ncr.number})
    views.keep_current_step(conn, tid)


# --- help and stop requests (andon) ----------------------------------------------------------------


def raise_andon(change: Change, trav: Traveler, tid: int, action: RaiseAndon) -> str:
    hold_id = None
    if action.andon == "stop":  # the line stops: a hold, and everyone on the step clocks off
        hold_id = _insert_hold(change, tid, f"Stop requested: {action.reason}", None)
        labour.clock_off(change, action.step_id, "stopped")
    return andon.raise_request(change, trav, tid, action, hold_id)


def acknowledge_andon(change: Change, trav: Traveler, tid: int, action: AcknowledgeAndon) -> str:
    return andon.acknowledge(change, trav, tid, action)


def resolve_andon(change: Change, trav: Traveler, tid: int, action: ResolveAndon) -> str:
    return andon.resolve(change, trav, tid, action)


# --- photos and files as evidence (kiosk/server/evidence.py receives the upload) --------------------


def attach_file(change: Change, item: Any, evidence: EvidenceFile) -> int:
    """Record an uploaded file on its item: a value naming the file's hash, size and type, in
    the uploader's name and audit-chained like any value (rules.ensure_can_attach agreed)."""
    row = {
        "item_id": item.id,
        "value": evidence.as_value(),
        "passed": None,
        "user_id": change.actor.id,
        "station_id": change.station.id,
        "server_time": change.now,
        "station_time": None,
        "offline": False,
    }
    old = None if item.latest is None else item.latest.value
    return change.insert_value("attach_file", row, old, item.failed_before)


Handler = Callable[[Change, Traveler, int, Any], str]

HANDLERS: dict[str, Handler] = {
    "start_step": start_step,
    "pause_step": pause_step,
    "record_value": record_value,
    "sign_step": sign_step,
    "raise_ncr": raise_ncr,
    "disposition_ncr": disposition_ncr,
    "approve_disposition": approve_disposition,
    "place_hold": place_hold,
    "release_hold": release_hold,
    "raise_andon": raise_andon,
    "acknowledge_andon": acknowledge_andon,
    "resolve_andon": resolve_andon,
    "acknowledge_redline": redlines.acknowledge,
    "approve_deviation": approve_deviation,
}


# --- corrections and voids (rules._check_correct, rules._check_void) --------------------------------


def correct_value(change: Change, trav: Traveler, _tid: int, action: CorrectValue) -> str:
    """A new value in effect on the item, naming the one it corrects and why; both are kept."""
    _step, item = rules.find_item(trav, action.item_id)
    old = item.latest
    assert old is not None  # rules.check: the item's value in effect is the one corrected
    value, passed = rules.evaluate(item, action.value)
    reason = action.reason.strip()
    row = {
        "item_id": item.id, "value": value, "passed": passed, "user_id": change.actor.id,
        "station_id": change.station.id, "server_time": change.now,
        "station_time": change.station_time, "offline": change.offline,
        "corrects_id": old.id, "reason": reason,
    }  # fmt: skip
    failed = rules.still_failed(
        item, passed, corrections.others_failed(change.conn, item.id, old.id)
    )
    change.insert_value("correct_value", row, old.value, failed)
    return f"{item.label}: {old.value} -> {value} corrected by {change.actor.name}: {reason}"


def void_signature(change: Change, trav: Traveler, tid: int, action: VoidSignature) -> str:
    """Quality's signature on each signature voided; those stay, marked void; the step reopens
    (paused: whoever redoes it resumes it and is clocked on)."""
    assert change.signer is not None
    step = rules.find_step(trav, action.step_id)
    reason = action.reason.strip()
    voided = rules.voided_by(step, action.meaning)
    for sig in voided:
        digest = records.void_content_hash(sig.id, sig.content_hash, reason)
        void_id = _insert_signature(change, "signature", sig.id, Meaning.APPROVED, digest)
        marks = {"void_signature_id": void_id, "void_reason": reason}
        change.amend("void_signature", "signature", sig.id, marks)
    if step.status is not StepStatus.PAUSED:
        _set_step_status(change, step, StepStatus.PAUSED)
    views.keep_current_step(change.conn, tid)
    what = " and ".join(f"{s.meaning.value} by {s.printed_name}" for s in voided)
    return f"Step {step.number}: {what} voided by {change.signer.name}: {reason}. Step reopened."


HANDLERS.update({"correct_value": correct_value, "void_signature": void_signature})
