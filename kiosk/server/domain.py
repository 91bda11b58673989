"""Write side: applies one station action to the store, after the rules in `kiosk.rules` agree.

Every handler runs inside the caller's transaction, checks before it writes, and appends an audit
record for each change, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, views
from kiosk.server import schema as t
from kiosk.wire import (
    Action,
    ActionApplied,
    ActionResult,
    DispositionNcr,
    ItemKind,
    Meaning,
    PauseStep,
    Person,
    PlaceHold,
    RaiseNcr,
    RecordValue,
    ReleaseHold,
    SignStep,
    StartStep,
    Step,
    StepStatus,
    Traveler,
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


def load_person(conn: Connection, user_id: int) -> Person:
    row = conn.execute(select(t.users).where(t.users.c.id == user_id)).one_or_none()
    if row is None or not row.active:
        raise Refusal("person_unknown", f"No active person with id {user_id}.", 403)
    if row.locked:
        raise Refusal("person_locked", f"{row.name} is locked; a supervisor must unlock.", 403)
    return views.person_from_row(row)


def apply(change: Change, action: Action, *, with_traveler: bool = True) -> ActionApplied:
    """Check and apply `action`. Batches skip re-reading the traveler afterwards: a station
    draining its outbox needs only the answer, and it halves the work per action."""
    trav_row = views.traveler_row(change.conn, action.traveler, lock=True)
    before = views.load_traveler(change.conn, action.traveler)
    message = HANDLERS[action.kind](change, before, trav_row.id, action)
    if not with_traveler:
        return ActionApplied(applied=action.kind, message=message)
    after = views.load_traveler(change.conn, action.traveler)
    return ActionResult(applied=action.kind, traveler=after, message=message)


# --- step handlers --------------------------------------------------------------------------------


def start_step(change: Change, trav: Traveler, _tid: int, action: StartStep) -> str:
    step = rules.find_step(trav, action.step_id)
    rules.ensure_can_start(trav, step, change.actor, change.station.work_center)
    if step.status is StepStatus.IN_WORK:
        return f"Step {step.number} is in work."
    _set_step_status(change, step, StepStatus.IN_WORK)
    verb = "resumed" if step.status is StepStatus.PAUSED else "started"
    return f"Step {step.number} {verb}."


def pause_step(change: Change, trav: Traveler, _tid: int, action: PauseStep) -> str:
    step = rules.find_step(trav, action.step_id)
    if step.status is not StepStatus.IN_WORK:
        raise Refusal("step_not_started", f"Step {step.number} is not in work.")
    _set_step_status(change, step, StepStatus.PAUSED)
    return f"Step {step.number} paused."


def _set_step_status(change: Change, step: Step, status: StepStatus) -> None:
    change.conn.execute(update(t.steps).where(t.steps.c.id == step.id).values(status=status.value))
    change.audit("step_status", f"step:{step.id}", step.status.value, status.value)


def record_value(change: Change, trav: Traveler, tid: int, action: RecordValue) -> str:
    step, item = rules.find_item(trav, action.item_id)
    rules.ensure_in_work(trav, step)
    value, passed = rules.evaluate(item, action.value)
    if item.kind is ItemKind.TOOL:
        value, tool_id = _calibrated_tool(change, value)
    elif item.kind is ItemKind.MATERIAL:
        value, lot_id = _known_lot(change, value)
    value_id = change.conn.execute(
        insert(t.recorded_values)
        .values(
            item_id=item.id,
            value=value,
            passed=passed,
            user_id=change.actor.id,
            station_id=change.station.id,
            server_time=change.now,
            station_time=change.station_time,
            offline=change.offline,
        )
        .returning(t.recorded_values.c.id)
    ).scalar_one()
    if item.kind is ItemKind.TOOL:
        change.conn.execute(
            insert(t.tool_uses).values(traveler_id=tid, value_id=value_id, tool_id=tool_id)
        )
    elif item.kind is ItemKind.MATERIAL:
        change.conn.execute(
            insert(t.consumption).values(traveler_id=tid, value_id=value_id, lot_id=lot_id)
        )
    old = None if item.latest is None else item.latest.value
    change.audit("record_value", f"item:{item.id}", old, {"value": value, "passed": passed})
    return _recorded_message(item.label, value, passed, item)


def _recorded_message(label: str, value: str, passed: bool | None, item: Any) -> str:
    if item.kind is ItemKind.MEASUREMENT:
        verdict = "in tolerance" if passed else "OUT OF TOLERANCE"
        return (
            f"{label}: {value} {item.unit or ''} recorded, {verdict} ({rules.limits_text(item)})."
        )
    return f"{label}: {value} recorded."


def _calibrated_tool(change: Change, code: str) -> tuple[str, int]:
    code = code.upper()
    tool = change.conn.execute(select(t.tools).where(t.tools.c.code == code)).one_or_none()
    if tool is None:
        raise Refusal("tool_unknown", f"Tool {code} is not in the tool crib register.", 422)
    today = change.now.date()
    if tool.calibration_due < today:
        raise Refusal(
            "tool_out_of_calibration",
            f"Tool {code} is out of calibration since {tool.calibration_due:%Y-%m-%d}; "
            "take a calibrated tool from the crib.",
        )
    return code, int(tool.id)


def _known_lot(change: Change, code: str) -> tuple[str, int]:
    code = code.upper()
    lot = change.conn.execute(
        select(t.material_lots).where(t.material_lots.c.code == code)
    ).one_or_none()
    if lot is None:
        raise Refusal("material_unknown", f"Material lot {code} is not known to stores.", 422)
    return code, int(lot.id)


# --- signatures -----------------------------------------------------------------------------------


def content_hash(
    trav: Traveler, step: Step, meaning: Meaning, signer: Person, now: datetime
) -> str:
    """SHA-256 of exactly what the signer saw: step text at its revision and every value."""
    content = {
        "traveler": trav.number,
        "step": step.number,
        "revision": step.revision,
        "instructions": step.instructions,
        "values": {i.label: i.latest.value if i.latest else None for i in step.items},
        "meaning": meaning.value,
        "signer": signer.id,
        "time": audit.micros(now),
    }
    return hashlib.sha256(audit.canonical(content).encode()).hexdigest()


def _insert_signature(
    change: Change, subject: str, subject_id: int, meaning: Meaning, digest: str
) -> int:
    assert change.signer is not None
    sig_id = change.conn.execute(
        insert(t.signatures)
        .values(
            subject=subject,
            subject_id=subject_id,
            user_id=change.signer.id,
            printed_name=change.signer.name,
            meaning=meaning.value,
            station_id=change.station.id,
            server_time=change.now,
            station_time=change.station_time,
            offline=change.offline,
            content_hash=digest,
        )
        .returning(t.signatures.c.id)
    ).scalar_one()
    change.audit(
        "sign", f"{subject}:{subject_id}", None, {"meaning": meaning.value, "hash": digest}
    )
    return int(sig_id)


def sign_step(change: Change, trav: Traveler, _tid: int, action: SignStep) -> str:
    assert change.signer is not None
    step = rules.find_step(trav, action.step_id)
    rules.ensure_can_sign(trav, step, change.signer, action.meaning)
    digest = content_hash(trav, step, action.meaning, change.signer, change.now)
    _insert_signature(change, "step", step.id, action.meaning, digest)
    if rules.completes_step(step, action.meaning):
        _set_step_status(change, step, StepStatus.COMPLETE)
    return f"Step {step.number} signed as {action.meaning.value} by {change.signer.name}."


# --- holds and NCRs ---------------------------------------------------------------------------------


def place_hold(change: Change, trav: Traveler, tid: int, action: PlaceHold) -> str:
    rules.require_role(change.actor, rules.HOLD_ROLES, "place a hold")
    _insert_hold(change, tid, action.reason, None)
    return f"{trav.number} is on hold: {action.reason}"


def _insert_hold(change: Change, tid: int, reason: str, ncr_id: int | None) -> None:
    hold_id = change.conn.execute(
        insert(t.holds)
        .values(
            traveler_id=tid,
            reason=reason,
            placed_by=change.actor.id,
            placed_at=change.now,
            ncr_id=ncr_id,
        )
        .returning(t.holds.c.id)
    ).scalar_one()
    change.audit("place_hold", f"hold:{hold_id}", None, {"reason": reason})


def release_hold(change: Change, trav: Traveler, tid: int, action: ReleaseHold) -> str:
    assert change.signer is not None
    rules.require_role(change.signer, rules.HOLD_ROLES, "release a hold")
    hold = views.active_hold_row(change.conn, tid)
    if hold is None:
        raise Refusal("not_on_hold", f"{trav.number} is not on hold.")
    if hold.ncr_id is not None:
        ncr = change.conn.execute(select(t.ncrs).where(t.ncrs.c.id == hold.ncr_id)).one()
        if ncr.disposition is None:
            raise Refusal(
                "ncr_open", f"{ncr.number} needs a disposition before the hold is released."
            )
    digest = hashlib.sha256(
        audit.canonical({"hold": hold.id, "reason": hold.reason}).encode()
    ).hexdigest()
    sig_id = _insert_signature(change, "hold", hold.id, Meaning.APPROVED, digest)
    change.conn.execute(
        update(t.holds).where(t.holds.c.id == hold.id).values(released_signature_id=sig_id)
    )
    return f"Hold on {trav.number} released by {change.signer.name}."


def raise_ncr(change: Change, trav: Traveler, tid: int, action: RaiseNcr) -> str:
    step_id, item_id = action.step_id, action.item_id
    if item_id is not None:
        step, _item = rules.find_item(trav, item_id)
        step_id = step.id
    elif step_id is not None:
        rules.find_step(trav, step_id)
    # The number comes from the row id, which the database hands out without races.
    ncr_id = change.conn.execute(
        insert(t.ncrs)
        .values(
            number=f"pending-{uuid.uuid4().hex[:12]}",
            traveler_id=tid,
            step_id=step_id,
            item_id=item_id,
            description=action.description,
            defect_code=action.defect_code,
            quantity=action.quantity,
            raised_by=change.actor.id,
            raised_at=change.now,
        )
        .returning(t.ncrs.c.id)
    ).scalar_one()
    number = f"NCR-{ncr_id:04d}"
    change.conn.execute(update(t.ncrs).where(t.ncrs.c.id == ncr_id).values(number=number))
    change.audit(
        "raise_ncr",
        f"ncr:{number}",
        None,
        action.model_dump(include={"description", "defect_code", "quantity"}),
    )
    _insert_hold(change, tid, f"{number}: {action.description}", ncr_id)
    return f"{number} raised; {trav.number} is on hold until quality dispositions it."


def disposition_ncr(change: Change, trav: Traveler, tid: int, action: DispositionNcr) -> str:
    assert change.signer is not None
    rules.require_role(change.signer, rules.DISPOSITION_ROLES, "disposition an NCR")
    ncr = change.conn.execute(
        select(t.ncrs).where(t.ncrs.c.number == action.ncr, t.ncrs.c.traveler_id == tid)
    ).one_or_none()
    if ncr is None:
        raise views.NotFound(f"{action.ncr} on {trav.number}")
    if ncr.disposition is not None:
        raise Refusal(
            "ncr_dispositioned", f"{ncr.number} is already dispositioned ({ncr.disposition})."
        )
    digest = hashlib.sha256(
        audit.canonical({"ncr": ncr.number, "disposition": action.disposition.value}).encode()
    ).hexdigest()
    sig_id = _insert_signature(change, "ncr", ncr.id, Meaning.APPROVED, digest)
    change.conn.execute(
        update(t.ncrs)
        .where(t.ncrs.c.id == ncr.id)
        .values(disposition=action.disposition.value, disposition_signature_id=sig_id)
    )
    change.audit("disposition_ncr", f"ncr:{ncr.number}", None, action.disposition.value)
    if action.disposition.value in ("rework", "repair") and ncr.step_id is not None:
        _add_rework_step(change, tid, ncr)
    return f"{ncr.number} dispositioned {action.disposition.value.replace('_', ' ')}."


def _add_rework_step(change: Change, tid: int, ncr: Any) -> None:
    """Rework adds an inspected step right after the nonconforming one, re-measuring the item."""
    conn = change.conn
    origin = conn.execute(select(t.steps).where(t.steps.c.id == ncr.step_id)).one()
    later = (t.steps.c.traveler_id == tid) & (t.steps.c.seq > origin.seq)
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
            operation_id=origin.operation_id,
            seq=origin.seq + 1,
            number=f"{origin.number}-RW",
            title=f"Rework per {ncr.number}",
            instructions=f"Rework as dispositioned on {ncr.number}: {ncr.description}",
            revision=origin.revision,
            inspection=True,
            status=StepStatus.NOT_STARTED.value,
        )
        .returning(t.steps.c.id)
    ).scalar_one()
    items = [
        {
            "step_id": step_id,
            "seq": 1,
            "label": "Rework done as instructed",
            "kind": "acknowledgement",
        }
    ]
    if ncr.item_id is not None:
        failed = conn.execute(select(t.data_items).where(t.data_items.c.id == ncr.item_id)).one()
        items.append(
            {
                "step_id": step_id,
                "seq": 2,
                "label": f"{failed.label} (re-measure)",
                "kind": failed.kind,
                "unit": failed.unit,
                "nominal": failed.nominal,
                "lower": failed.lower,
                "upper": failed.upper,
            }
        )
    for item in items:
        conn.execute(insert(t.data_items).values(required=True, **item))
    change.audit(
        "add_step", f"step:{step_id}", None, {"number": f"{origin.number}-RW", "ncr": ncr.number}
    )


Handler = Callable[[Change, Traveler, int, Any], str]

HANDLERS: dict[str, Handler] = {
    "start_step": start_step,
    "pause_step": pause_step,
    "record_value": record_value,
    "sign_step": sign_step,
    "raise_ncr": raise_ncr,
    "disposition_ncr": disposition_ncr,
    "place_hold": place_hold,
    "release_hold": release_hold,
}
