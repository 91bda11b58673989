"""What a traveler looks like once this station's not-yet-delivered actions are applied to it.

The screen must show an action as recorded the moment the outbox has it, online or not. The rules
that decide whether an action may happen are `kiosk.rules`, the same functions the server runs;
this module only carries out the state change on a copy of the traveler, marked as this station's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kiosk import rules
from kiosk.wire import (
    Action,
    DataItem,
    DispositionNcr,
    Hold,
    Meaning,
    Ncr,
    PauseStep,
    Person,
    PlaceHold,
    RaiseNcr,
    RecordedValue,
    RecordValue,
    ReleaseHold,
    SignatureManifest,
    SignStep,
    StartStep,
    Step,
    StepStatus,
    Traveler,
)

PENDING_HASH = "pending"


@dataclass(frozen=True)
class Context:
    """Who did it, where and when, for the marks the projection leaves."""

    actor: Person
    signer: Person | None
    station: str
    work_center: str
    now: datetime
    local_id: int  # negative ids mark what only this station knows yet


def project(trav: Traveler, action: Action, ctx: Context) -> Traveler:
    """Check `action` with the shared rules, then return the traveler as it would be after it."""
    if isinstance(action, StartStep):
        step = rules.find_step(trav, action.step_id)
        rules.ensure_can_start(trav, step, ctx.actor, ctx.work_center)
        return _with_step(trav, step.model_copy(update={"status": StepStatus.IN_WORK}))
    if isinstance(action, PauseStep):
        step = rules.find_step(trav, action.step_id)
        if step.status is not StepStatus.IN_WORK:
            raise rules.Refusal("step_not_started", f"Step {step.number} is not in work.")
        return _with_step(trav, step.model_copy(update={"status": StepStatus.PAUSED}))
    if isinstance(action, RecordValue):
        return _record(trav, action, ctx)
    if isinstance(action, SignStep):
        return _sign(trav, action, ctx)
    return _hold_or_ncr(trav, action, ctx)


def _with_step(trav: Traveler, changed: Step) -> Traveler:
    steps = tuple(changed if s.id == changed.id else s for s in trav.steps)
    return _restate(trav.model_copy(update={"steps": steps}))


def _restate(trav: Traveler) -> Traveler:
    return trav.model_copy(
        update={"status": rules.traveler_status(trav.steps, trav.hold is not None)}
    )


def _record(trav: Traveler, action: RecordValue, ctx: Context) -> Traveler:
    step, item = rules.find_item(trav, action.item_id)
    rules.ensure_in_work(trav, step)
    value, passed = rules.evaluate(item, action.value)
    entry = RecordedValue(
        id=ctx.local_id,
        value=value.upper() if item.kind.value in ("tool", "material") else value,
        passed=passed,
        recorded_by=ctx.actor.name,
        server_time=ctx.now,
        station_time=ctx.now,
        station=ctx.station,
        offline=True,
    )
    failed = item.failed_before or passed is False
    changed: DataItem = item.model_copy(update={"latest": entry, "failed_before": failed})
    items = tuple(changed if i.id == item.id else i for i in step.items)
    return _with_step(trav, step.model_copy(update={"items": items}))


def _sign(trav: Traveler, action: SignStep, ctx: Context) -> Traveler:
    signer = ctx.signer
    assert signer is not None
    step = rules.find_step(trav, action.step_id)
    rules.ensure_can_sign(trav, step, signer, action.meaning)
    signature = _manifest(signer, action.meaning, ctx)
    status = StepStatus.COMPLETE if rules.completes_step(step, action.meaning) else step.status
    changed = step.model_copy(
        update={"signatures": (*step.signatures, signature), "status": status}
    )
    return _with_step(trav, changed)


def _manifest(signer: Person, meaning: Meaning, ctx: Context) -> SignatureManifest:
    return SignatureManifest(
        id=ctx.local_id,
        signer_id=signer.id,
        printed_name=signer.name,
        meaning=meaning,
        server_time=ctx.now,
        station=ctx.station,
        content_hash=PENDING_HASH,
        station_time=ctx.now,
        offline=True,
    )


def _hold_or_ncr(trav: Traveler, action: Action, ctx: Context) -> Traveler:
    if isinstance(action, PlaceHold):
        rules.require_role(ctx.actor, rules.HOLD_ROLES, "place a hold")
        return _restate(trav.model_copy(update={"hold": _hold(action.reason, None, ctx)}))
    if isinstance(action, ReleaseHold):
        assert ctx.signer is not None
        rules.require_role(ctx.signer, rules.HOLD_ROLES, "release a hold")
        if trav.hold is None:
            raise rules.Refusal("not_on_hold", f"{trav.number} is not on hold.")
        return _restate(trav.model_copy(update={"hold": None}))
    if isinstance(action, RaiseNcr):
        number = f"NCR (pending #{-ctx.local_id})"
        ncr = Ncr(
            number=number,
            step_number=None,
            description=action.description,
            defect_code=action.defect_code,
            quantity=action.quantity,
            status="open",
            raised_by=ctx.actor.name,
            raised_at=ctx.now,
        )
        trav = _mark_item_ncr(trav, action.item_id, number)
        hold = trav.hold or _hold(f"{number}: {action.description}", number, ctx)
        return _restate(trav.model_copy(update={"ncrs": (*trav.ncrs, ncr), "hold": hold}))
    assert isinstance(action, DispositionNcr)
    assert ctx.signer is not None
    rules.require_role(ctx.signer, rules.DISPOSITION_ROLES, "disposition an NCR")
    ncrs = tuple(
        n.model_copy(update={"status": "dispositioned", "disposition": action.disposition})
        if n.number == action.ncr
        else n
        for n in trav.ncrs
    )
    return trav.model_copy(update={"ncrs": ncrs})


def _hold(reason: str, ncr: str | None, ctx: Context) -> Hold:
    return Hold(
        id=ctx.local_id, reason=reason, placed_by=ctx.actor.name, placed_at=ctx.now, ncr_number=ncr
    )


def _mark_item_ncr(trav: Traveler, item_id: int | None, number: str) -> Traveler:
    if item_id is None:
        return trav
    step, item = rules.find_item(trav, item_id)
    changed = item.model_copy(update={"ncr_number": number})
    items = tuple(changed if i.id == item_id else i for i in step.items)
    return trav.model_copy(
        update={
            "steps": tuple(
                s.model_copy(update={"items": items}) if s.id == step.id else s for s in trav.steps
            )
        }
    )
