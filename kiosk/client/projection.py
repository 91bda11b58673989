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
    AcknowledgeAndon,
    AcknowledgeRedline,
    Action,
    AndonRequest,
    ApproveDeviation,
    ApproveDisposition,
    CorrectValue,
    DispositionNcr,
    Hold,
    LabourEntry,
    Meaning,
    Ncr,
    PauseStep,
    Person,
    PlaceHold,
    RaiseAndon,
    RaiseNcr,
    RecordedValue,
    RecordValue,
    ReleaseHold,
    ResolveAndon,
    SignatureManifest,
    SignStep,
    StartStep,
    Step,
    StepStatus,
    Traveler,
    VoidSignature,
)

PENDING_HASH = "pending"
CONFIRMED_ID = 0
"""The id of what the server has confirmed but this station has not read back yet (an answer
applied to the traveler on screen rather than fetched): no longer pending, its own id unknown."""


def is_pending(record_id: int) -> bool:
    """Whether a value, signature or hold is only on this station yet: recorded in its outbox,
    not confirmed by the server (negative ids, see `Context.local_id`)."""
    return record_id < 0


@dataclass(frozen=True)
class Context:
    """Who did it, where and when, for the marks the projection leaves."""

    actor: Person
    signer: Person | None
    station: str
    work_center: str
    now: datetime
    local_id: int  # negative ids mark what only this station knows yet; CONFIRMED_ID the rest
    steps_per_person: int = 1  # the plant's labour limit (StationConfig.steps_per_person)


def project(trav: Traveler, action: Action, ctx: Context) -> Traveler:
    """Check `action` with the shared rules, then return the traveler as it would be after it."""
    rules.check(trav, action, ctx.actor, ctx.signer, ctx.work_center)
    if isinstance(action, StartStep):
        step = rules.find_step(trav, action.step_id)
        trav = _clock_on(trav, step, ctx)
        return _with_step(trav, step.model_copy(update={"status": StepStatus.IN_WORK}))
    if isinstance(action, PauseStep):
        step = rules.find_step(trav, action.step_id)
        if not rules.pause_pauses_step(trav, step.id, ctx.actor):
            return _clock_off(trav, step.id, ctx.actor.id)
        trav = _clock_off(trav, step.id)
        return _with_step(trav, step.model_copy(update={"status": StepStatus.PAUSED}))
    if isinstance(action, AcknowledgeRedline):
        step = rules.find_step(trav, action.step_id)
        still = tuple(r for r in step.redlines if r.id != action.redline_id)
        return _with_step(trav, step.model_copy(update={"redlines": still}))
    if isinstance(action, RaiseAndon | AcknowledgeAndon | ResolveAndon):
        return _andon(trav, action, ctx)
    if isinstance(action, RecordValue):
        return _record(trav, action, ctx)
    if isinstance(action, SignStep):
        return _sign(trav, action, ctx)
    if isinstance(action, ApproveDisposition):
        return _approve(trav, action, ctx)
    if isinstance(action, CorrectValue | VoidSignature):
        return _correct_or_void(trav, action, ctx)
    if isinstance(action, ApproveDeviation):
        return _approve_deviation(trav, action, ctx)
    return _hold_or_ncr(trav, action, ctx)


def _clock_on(trav: Traveler, step: Step, ctx: Context) -> Traveler:
    """What this station knows of the person's labour is this traveler: the same rule as the
    server's, on that (the server also sees their other travelers)."""
    mine = [e for e in trav.labour if e.user_id == ctx.actor.id]
    if any(e.step_id == step.id for e in mine):
        return trav
    elsewhere = [f"{trav.number} step {e.step}" for e in mine]
    here = f"{trav.number} step {step.number}"
    rules.ensure_can_clock_on(ctx.actor, here, elsewhere, ctx.steps_per_person)
    entry = LabourEntry(
        user_id=ctx.actor.id,
        person=ctx.actor.name,
        step_id=step.id,
        step=step.number,
        station=ctx.station,
        since=ctx.now,
    )
    return trav.model_copy(update={"labour": (*trav.labour, entry)})


def _clock_off(trav: Traveler, step_id: int, user_id: int | None = None) -> Traveler:
    kept = tuple(
        e
        for e in trav.labour
        if e.step_id != step_id or (user_id is not None and e.user_id != user_id)
    )
    return trav.model_copy(update={"labour": kept})


def _andon(
    trav: Traveler, action: RaiseAndon | AcknowledgeAndon | ResolveAndon, ctx: Context
) -> Traveler:
    if isinstance(action, RaiseAndon):
        step = rules.find_step(trav, action.step_id)
        request = AndonRequest(
            id=ctx.local_id,
            traveler=trav.number,
            step=step.number,
            kind=action.andon,
            reason=action.reason,
            raised_by=ctx.actor.name,
            station=ctx.station,
            raised_at=ctx.now,
        )
        trav = trav.model_copy(update={"andon": (*trav.andon, request)})
        if action.andon == "stop":
            hold = _hold(f"Stop requested: {action.reason}", None, ctx)
            trav = _clock_off(trav, step.id)
            stop = hold.model_copy(update={"stop": True})
            trav = _restate(trav.model_copy(update={"hold": stop}))
        return trav
    if isinstance(action, ResolveAndon):
        kept = tuple(r for r in trav.andon if r.id != action.request_id)
        return trav.model_copy(update={"andon": kept})
    seen = {"acknowledged_by": ctx.actor.name, "acknowledged_at": ctx.now}
    requests = tuple(
        r.model_copy(update=seen) if r.id == action.request_id else r for r in trav.andon
    )
    return trav.model_copy(update={"andon": requests})


def _with_step(trav: Traveler, changed: Step) -> Traveler:
    steps = tuple(changed if s.id == changed.id else s for s in trav.steps)
    return _restate(trav.model_copy(update={"steps": steps}))


def _restate(trav: Traveler) -> Traveler:
    return trav.model_copy(
        update={
            "status": rules.traveler_status(
                trav.steps, trav.hold is not None, rules.ended_by(trav.ncrs)
            )
        }
    )


def _record(trav: Traveler, action: RecordValue, ctx: Context) -> Traveler:
    step, item = rules.find_item(trav, action.item_id)
    judged = rules.judge(trav, step, item, action.value, rules.acting_day(action))
    value, passed = judged.value, judged.passed
    if judged.deviation is not None:
        trav = _relied_on(trav, judged.deviation)
    entry = RecordedValue(
        id=ctx.local_id,
        value=value.upper() if item.kind.value in ("tool", "material") else value,
        passed=passed,
        deviation=judged.deviation,
        recorded_by=ctx.actor.name,
        server_time=ctx.now,
        station_time=ctx.now,
        station=ctx.station,
        offline=action.offline or is_pending(ctx.local_id),
    )
    return _restate(rules.with_latest(trav, item.id, entry, item.failed_before or passed is False))


def _relied_on(trav: Traveler, number: str) -> Traveler:
    """The traveler takes a unit of the deviation the first time it relies on it."""
    devs = tuple(
        d.model_copy(update={"used_by": (*d.used_by, trav.number)})
        if d.number == number and trav.number not in d.used_by
        else d
        for d in trav.deviations
    )
    return trav.model_copy(update={"deviations": devs})


def _approve_deviation(trav: Traveler, action: ApproveDeviation, ctx: Context) -> Traveler:
    dev = rules.find_deviation(trav, action.deviation)
    approvals = (*dev.approvals, _manifest(_signer(ctx), Meaning.APPROVED, ctx))
    status = rules.deviation_status(len(approvals), dev.approval_role)
    changed = dev.model_copy(update={"approvals": approvals, "status": status})
    devs = tuple(changed if d.number == dev.number else d for d in trav.deviations)
    return trav.model_copy(update={"deviations": devs})


def _sign(trav: Traveler, action: SignStep, ctx: Context) -> Traveler:
    signer = ctx.signer
    assert signer is not None
    step = rules.find_step(trav, action.step_id)
    signature = _manifest(signer, action.meaning, ctx)
    status = StepStatus.COMPLETE if rules.completes_step(step, action.meaning) else step.status
    trav = _clock_off(trav, step.id)
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
        return _restate(trav.model_copy(update={"hold": _hold(action.reason, None, ctx)}))
    if isinstance(action, ReleaseHold):
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
    signature = _manifest(_signer(ctx), Meaning.APPROVED, ctx)
    said = {"rationale": action.rationale.strip(), "instructions": action.instructions.strip()}
    trav = _with_ncr(
        trav,
        action.ncr,
        {"disposition": action.disposition, "disposition_signature": signature, **said},
    )
    if rules.reworks(action.disposition.value):
        trav = _with_rework(trav, action.ncr, ctx)
    return _restate(trav)


def _approve(trav: Traveler, action: ApproveDisposition, ctx: Context) -> Traveler:
    signature = _manifest(_signer(ctx), Meaning.APPROVED, ctx)
    return _with_ncr(trav, action.ncr, {"approval_signature": signature})


def _with_ncr(trav: Traveler, number: str, changes: dict[str, object]) -> Traveler:
    """The NCR changed, and its status said again from what it now holds (rules.ncr_status)."""
    ncrs = []
    for n in trav.ncrs:
        if n.number == number:
            n = n.model_copy(update=changes)
            n = n.model_copy(update={"status": rules.ncr_status(n)})
        ncrs.append(n)
    return trav.model_copy(update={"ncrs": tuple(ncrs)})


def _signer(ctx: Context) -> Person:
    assert ctx.signer is not None  # rules.check refused a signature without one
    return ctx.signer


def _with_rework(trav: Traveler, number: str, ctx: Context) -> Traveler:
    """The rework step the server will add after the nonconforming step, shown at once."""
    ncr = next(n for n in trav.ncrs if n.number == number)
    origin = next((s for s in trav.steps if s.number == ncr.step_number), None)
    if origin is None:
        return trav
    failed = next((i for i in origin.items if i.ncr_number == number), None)
    step = rules.rework_step(origin, number, ncr.description, failed, ncr.instructions)
    local = tuple(
        i.model_copy(update={"id": ctx.local_id * 1000 - n}) for n, i in enumerate(step.items)
    )
    step = step.model_copy(update={"id": ctx.local_id * 1000, "items": local})
    at = trav.steps.index(origin) + 1
    return _restate(trav.model_copy(update={"steps": (*trav.steps[:at], step, *trav.steps[at:])}))


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


def _correct_or_void(trav: Traveler, action: CorrectValue | VoidSignature, ctx: Context) -> Traveler:
    """A correction: the new value in effect, naming the one it corrects. A void: the step's
    signatures voided (rules.voided_by) kept as voided, and the step reopened (paused)."""
    if isinstance(action, CorrectValue):
        _, item = rules.find_item(trav, action.item_id)
        value, passed = rules.evaluate(item, action.value)
        entry = RecordedValue(
            id=ctx.local_id, value=value, passed=passed, recorded_by=ctx.actor.name,
            server_time=ctx.now, station_time=ctx.now, station=ctx.station,
            offline=action.offline or is_pending(ctx.local_id),
            corrects=action.corrects, reason=action.reason.strip(),
        )  # fmt: skip
        return _restate(rules.with_latest(trav, item.id, entry, rules.still_failed(item, passed)))
    step = rules.find_step(trav, action.step_id)
    gone = rules.voided_by(step, action.meaning)
    void = _manifest(_signer(ctx), Meaning.APPROVED, ctx)
    marked = tuple(
        s.model_copy(update={"void_reason": action.reason.strip(), "voided": void}) for s in gone
    )
    standing = tuple(s for s in step.signatures if s not in gone)
    update = {"signatures": standing, "voided": (*step.voided, *marked), "status": StepStatus.PAUSED}
    return _with_step(trav, step.model_copy(update=update))
