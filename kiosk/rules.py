"""Domain rules of traveler execution, in one place.

The server enforces them before it changes anything; the station calls the very same functions on
its cached traveler for instant feedback. They work on wire models only, so they need neither a
database nor a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from kiosk.scanning.detector import DetectorSettings

if TYPE_CHECKING:
    from kiosk.wire import Action, ScannerConfig

from kiosk.wire import (
    AndonRequest,
    Certification,
    DataItem,
    Deviation,
    DeviationStatus,
    Disposition,
    ItemKind,
    LabourEntry,
    Meaning,
    Ncr,
    Person,
    RecordedValue,
    Role,
    SignatureManifest,
    Step,
    StepStatus,
    Tool,
    Traveler,
    TravelerStatus,
)

PERFORM_ROLES = frozenset({Role.OPERATOR, Role.INSPECTOR, Role.SUPERVISOR})
VERIFY_ROLES = frozenset({Role.INSPECTOR, Role.QUALITY})
HOLD_ROLES = frozenset({Role.SUPERVISOR, Role.QUALITY})
DISPOSITION_ROLES = frozenset({Role.QUALITY})
UNLOCK_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
ADMIN_ROLES = frozenset({Role.ADMIN})
# Andon: a supervisor answers help and stop requests, and alone releases a stop's hold.
ANDON_ROLES = frozenset({Role.SUPERVISOR})
# Who may watch the live board: the people who run the floor, and admins.
BOARD_ROLES = frozenset({Role.SUPERVISOR, Role.QUALITY, Role.ADMIN})
# Everyone who works on travelers; an admin keeps the stations running and records nothing on them.
WORK_ROLES = frozenset({Role.OPERATOR, Role.INSPECTOR, Role.SUPERVISOR, Role.QUALITY})

# Who may be the actor of each action (the signer of a signature has rules of its own, below):
# one rule per action, enforced by the server and checked first by the station.
ACTION_ROLES: dict[str, tuple[frozenset[Role], str]] = {
    "start_step": (PERFORM_ROLES, "work on steps"),
    "pause_step": (PERFORM_ROLES, "work on steps"),
    "record_value": (PERFORM_ROLES, "record values"),
    "raise_ncr": (WORK_ROLES, "raise an NCR"),
    "place_hold": (HOLD_ROLES, "place a hold"),
    "sign_step": (WORK_ROLES, "work on travelers"),
    "release_hold": (WORK_ROLES, "work on travelers"),
    "disposition_ncr": (WORK_ROLES, "work on travelers"),
    "approve_disposition": (WORK_ROLES, "work on travelers"),
    "raise_andon": (WORK_ROLES, "ask for help or stop a step"),
    "acknowledge_andon": (ANDON_ROLES, "answer help and stop requests"),
    "resolve_andon": (ANDON_ROLES, "answer help and stop requests"),
    "acknowledge_redline": (PERFORM_ROLES, "work on steps"),
    "approve_deviation": (WORK_ROLES, "work on travelers"),
    "attach_file": (PERFORM_ROLES, "record values"),
}

PASS_WORDS = {"pass": "pass", "p": "pass", "ok": "pass", "fail": "fail", "f": "fail", "nok": "fail"}
ACK_WORDS = {"acknowledged", "ack", "yes", "y"}


class Refusal(Exception):
    """A rule said no. `status` is the HTTP status the server answers with."""

    def __init__(
        self, rule: str, detail: str, status: int = 409, *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        """Seconds before trying again is worth it (429: sent as Retry-After)."""


def has_role(person: Person, allowed: Iterable[Role]) -> bool:
    return not set(person.roles).isdisjoint(allowed)


def require_role(person: Person, allowed: frozenset[Role], doing: str) -> None:
    if not has_role(person, allowed):
        wanted = " or ".join(sorted(r.value for r in allowed))
        raise Refusal("role_not_allowed", f"{person.name} may not {doing}: needs {wanted}.", 403)


def ensure_scanner_usable(config: ScannerConfig) -> None:
    """Scanner settings a station's detector can run on; each field alone is checked by the wire
    model, this is how they combine (the detector's own checks, so there is one rule)."""
    try:
        DetectorSettings.from_config(config)
    except ValueError as exc:
        raise Refusal(
            "scanner_settings_unusable", f"Scanner settings a station cannot use: {exc}.", 422
        ) from None


def qualified(person: Person, work_center: str) -> bool:
    return "*" in person.work_centers or work_center in person.work_centers


def ensure_qualified(person: Person, work_center: str) -> None:
    """A person works, and signs, only at stations of the work centers they are qualified for."""
    if not qualified(person, work_center):
        raise Refusal(
            "not_qualified", f"{person.name} is not qualified for work center {work_center}.", 403
        )


def authorize(person: Person, kind: str, work_center: str) -> None:
    """May `person` be the actor of an action of this kind at a station of `work_center`?"""
    ensure_qualified(person, work_center)
    allowed, doing = ACTION_ROLES[kind]
    require_role(person, allowed, doing)


# --- values -------------------------------------------------------------------------------------


def limits_text(item: DataItem) -> str:
    unit = f" {item.unit}" if item.unit else ""
    return f"{item.lower:g}–{item.upper:g}{unit}"


def evaluate(item: DataItem, raw: str) -> tuple[str, bool | None]:
    """Normalise a typed or scanned value for `item` and judge it: (value, passed).

    `passed` is None where the item has no pass/fail sense (text, tool, material). Raises Refusal
    when the value cannot be read at all; an out-of-tolerance number is a valid value that fails.
    """
    text = raw.strip()
    if not text:
        raise Refusal("value_missing", f"{item.label}: enter a value.", 422)
    if item.kind is ItemKind.MEASUREMENT:
        return _evaluate_measurement(item, text)
    if item.kind is ItemKind.PASS_FAIL:
        word = PASS_WORDS.get(text.lower())
        if word is None:
            raise Refusal("value_invalid", f"{item.label}: answer pass or fail.", 422)
        return word, word == "pass"
    if item.kind in EVIDENCE_TYPES:
        raise Refusal("value_by_upload", f"{item.label}: {upload_hint(item)}", 422)
    if item.kind is ItemKind.ACKNOWLEDGEMENT:
        if text.lower() not in ACK_WORDS:
            raise Refusal("value_invalid", f"{item.label}: confirm with 'acknowledged'.", 422)
        return "acknowledged", True
    return text, None


def _evaluate_measurement(item: DataItem, text: str) -> tuple[str, bool]:
    """Read a plain decimal number, as a person types it or a gauge sends it.

    Accepted: an optional sign (`-` or `+`, which wedge gauges send), ASCII digits, and at most one
    decimal point or comma (`12.7`, `12,7`, `-0.02`, `+012.700`, `.5`). Refused, so that nothing is
    read as a number the person did not mean: exponents (`1e3`), underscores (`1_2.7`, which
    Python's float() would take for 12.7), spaces, digit groups (`1.234,5`), other scripts' digits,
    `inf`, `nan` and `Infinity`, and numbers too large to be finite.
    """
    sign, unsigned = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    whole, _, fraction = unsigned.replace(",", ".").partition(".")
    digits = whole + fraction
    if not (digits and digits.isascii() and digits.isdigit()) or len(digits) > MAX_DIGITS:
        raise Refusal("value_invalid", f"{item.label}: '{text[:20]}' is not a number.", 422)
    # Kept as read: `12.70` stays 12.70 (the gauge's resolution), never the float 12.7.
    number = Decimal(f"{sign}{whole or 0}.{fraction}" if fraction else f"{sign}{whole}")
    return format(number, "f"), in_tolerance(item, number)


MAX_DIGITS = 30
"""More digits than any gauge reads: such a 'number' is a scan of something else."""


def in_tolerance(item: DataItem, number: Decimal) -> bool:
    """Compared as decimals: a limit of 12.71 means 12.71, not the binary float nearest it."""
    if item.lower is not None and number < _decimal(item.lower):
        return False
    return item.upper is None or number <= _decimal(item.upper)


def _decimal(limit: float) -> Decimal:
    # repr gives the shortest text that reads back as the same float: what the routing said.
    return Decimal(repr(limit))


# --- expected values ------------------------------------------------------------------------------


def expected_of(trav: Traveler, item: DataItem) -> str | None:
    """The item's expected value or pattern with the traveler's serial, lot and part filled in."""
    if item.expected is None:
        return None
    fields = {"serial": trav.serial or "", "lot": trav.lot or "", "part_number": trav.part_number}
    text = item.expected
    for name, value in fields.items():
        text = text.replace("{" + name + "}", value)
    return text


def ensure_expected(trav: Traveler, item: DataItem, value: str) -> None:
    """A value the item names in advance (a marking must be the traveler's serial) is refused
    when it is anything else. A material item's expectation is the lot's part number: that is
    `ensure_lot_part`, which only the server can apply (it knows the stores' lots)."""
    wanted = expected_of(trav, item)
    if wanted is None or item.kind is ItemKind.MATERIAL:
        return
    if not fnmatchcase(value.upper(), wanted.upper()):
        raise Refusal(
            "value_unexpected", f"{item.label}: {value[:40]} is not what this traveler needs "
            f"({wanted}).", 422,
        )  # fmt: skip


def ensure_lot_part(
    trav: Traveler, item: DataItem, lot: str, part: str, substitutes: Iterable[str] = ()
) -> None:
    """A lot recorded on a material item must be of the part number the item names.

    `substitutes`: part numbers something approved allows in its place (a deviation, when those
    exist); the refusal says that is the way to accept one."""
    wanted = expected_of(trav, item)
    if wanted is None or fnmatchcase(part.upper(), wanted.upper()):
        return
    if any(fnmatchcase(part.upper(), other.upper()) for other in substitutes):
        return
    raise Refusal(
        "wrong_part",
        f"{item.label}: lot {lot} is part {part}, not {wanted}. Scan a lot of {wanted}; "
        "another part is used only under an approved deviation.",
        422,
    )


def ensure_tool_usable(code: str, tool: Tool | None, today: date) -> None:
    """A tool recorded on a step must be in the crib register and in calibration `today`. The
    server decides with its register when it applies the value; a station online asks the
    register first, so an expired tool is said at once rather than queued to be refused."""
    if tool is None:
        raise Refusal("tool_unknown", f"Tool {code} is not in the tool crib register.", 422)
    if tool.calibration_due < today:
        raise Refusal(
            "tool_out_of_calibration",
            f"Tool {code} is out of calibration since {tool.calibration_due:%Y-%m-%d}; "
            "take a calibrated tool from the crib.",
        )


# --- certifications --------------------------------------------------------------------------------


def acting_day(action: Action) -> date:
    """The day an action happened on, for certifications: offline, when the station recorded it
    (its clock, within the offline window); online, today on the server's clock."""
    if action.offline and action.station_time is not None:
        return action.station_time.astimezone(UTC).date()
    return datetime.now(UTC).date()


def ensure_certified(person: Person, step: Step, on: date | None = None) -> None:
    """A step that names a certification is started and signed only by someone who holds it,
    not expired on the day (`expires` is the last good day)."""
    need = step.certification
    if need is None:
        return
    day = on or datetime.now(UTC).date()
    held = next((c for c in person.certifications if c.operation.lower() == need.lower()), None)
    if held is None:
        raise Refusal(
            "not_certified",
            f"{person.name} holds no {need} certification, which step {step.number} needs.",
            403,
        )
    if held.expires < day:
        raise Refusal(
            "certification_expired",
            f"{person.name}'s {need} certification expired on {held.expires:%Y-%m-%d}; "
            f"step {step.number} needs it.",
            403,
        )


def expiring(cert: Certification, today: date, days: int) -> bool:
    """Expired already, or expiring within `days` days: what a supervisor must act on."""
    return cert.expires <= today + timedelta(days=days)


# --- steps --------------------------------------------------------------------------------------


def find_step(traveler: Traveler, step_id: int) -> Step:
    for step in traveler.steps:
        if step.id == step_id:
            return step
    raise Refusal("not_found", f"{traveler.number} has no step {step_id}.", 404)


def find_item(traveler: Traveler, item_id: int) -> tuple[Step, DataItem]:
    for step in traveler.steps:
        for item in step.items:
            if item.id == item_id:
                return step, item
    raise Refusal("not_found", f"{traveler.number} has no data item {item_id}.", 404)


def with_latest(
    traveler: Traveler, item_id: int, latest: RecordedValue, failed: bool
) -> Traveler:
    """The traveler once a value lands on an item: its latest value, and whether any value on it
    failed. What the station shows as recorded and what the server's batch judges the next value
    by (kiosk.server.kept)."""
    step, item = find_item(traveler, item_id)
    item = item.model_copy(update={"latest": latest, "failed_before": failed})
    step = step.model_copy(update={"items": tuple(item if i.id == item_id else i for i in step.items)})
    steps = tuple(step if s.id == step.id else s for s in traveler.steps)
    return traveler.model_copy(update={"steps": steps})


def traveler_status(
    steps: Sequence[Step], on_hold: bool, ended: TravelerStatus | None = None
) -> TravelerStatus:
    """Scrapped or returned above all (`ended`, see `ended_by`); then on hold; complete when
    every step is; in work once any step has begun."""
    if ended is not None:
        return ended
    if on_hold:
        return TravelerStatus.ON_HOLD
    if steps and all(s.status is StepStatus.COMPLETE for s in steps):
        return TravelerStatus.COMPLETE
    if any(s.status is not StepStatus.NOT_STARTED for s in steps):
        return TravelerStatus.IN_WORK
    return TravelerStatus.NOT_STARTED


def current_step(traveler: Traveler) -> Step | None:
    """The first step that is not complete: where work on the traveler stands."""
    return next((s for s in traveler.steps if s.status is not StepStatus.COMPLETE), None)


def ensure_not_ended(traveler: Traveler) -> None:
    """A scrapped or returned unit is gone from the line: nothing more is recorded on it."""
    if traveler.status in ENDED_WORDS:
        ncr = next((n.number for n in traveler.ncrs if n.disposition in ENDING), "its NCR")
        raise Refusal(
            "traveler_ended",
            f"{traveler.number} was {ENDED_WORDS[traveler.status]} ({ncr}): nothing more can be "
            "recorded on it.",
        )


def ensure_not_on_hold(traveler: Traveler) -> None:
    ensure_not_ended(traveler)
    if traveler.status is TravelerStatus.ON_HOLD and traveler.hold is not None:
        raise Refusal(
            "traveler_on_hold",
            f"{traveler.number} is on hold: {traveler.hold.reason}. Nothing can be recorded "
            "until a supervisor or quality releases it.",
        )


def ensure_predecessors_complete(traveler: Traveler, step: Step) -> None:
    for earlier in traveler.steps:
        if earlier.id == step.id:
            return
        if earlier.status is not StepStatus.COMPLETE:
            raise Refusal(
                "predecessor_incomplete",
                f"Step {step.number} cannot start: step {earlier.number} is not complete.",
            )


def ensure_work_center(step: Step, work_center: str) -> None:
    if step.work_center != work_center:
        raise Refusal(
            "wrong_work_center",
            f"Step {step.number} is worked at {step.work_center}, not at this station "
            f"({work_center}).",
        )


def ensure_can_start(
    traveler: Traveler, step: Step, person: Person, work_center: str, on: date | None = None
) -> None:
    """Gating happens before work starts: whatever would refuse the sign-off refuses the start."""
    ensure_not_on_hold(traveler)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already complete.")
    ensure_predecessors_complete(traveler, step)
    ensure_work_center(step, work_center)
    ensure_redlines_acknowledged(step)
    require_role(person, PERFORM_ROLES, f"work step {step.number}")
    ensure_certified(person, step, on)


def ensure_can_record(traveler: Traveler, step: Step, work_center: str) -> None:
    """Values, tools and lots are recorded on a step in work, at a station of its work center."""
    ensure_in_work(traveler, step)
    ensure_work_center(step, work_center)
    ensure_redlines_acknowledged(step)


def ensure_in_work(traveler: Traveler, step: Step) -> None:
    ensure_not_on_hold(traveler)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already complete.")
    if step.status is not StepStatus.IN_WORK:
        raise Refusal("step_not_started", f"Start step {step.number} before recording on it.")


def outstanding(step: Step) -> list[str]:
    """What the step still needs before its performer can sign, in words for the operator."""
    needs: list[str] = []
    for item in step.items:
        if item.required and item.latest is None:
            needs.append(f"{item.label}: no value yet")
        elif item.ncr_number is None and (
            item.failed_before or (item.latest is not None and item.latest.passed is False)
        ):
            # Measuring again until it passes does not clear a failure: an NCR must.
            needs.append(f"{item.label}: out of tolerance, raise an NCR")
    return needs


def performer(step: Step) -> int | None:
    return next((s.signer_id for s in step.signatures if s.meaning is Meaning.PERFORMED), None)


def ensure_can_sign(
    traveler: Traveler, step: Step, signer: Person, meaning: Meaning, on: date | None = None
) -> None:
    ensure_not_on_hold(traveler)
    ensure_predecessors_complete(traveler, step)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already signed off.")
    ensure_redlines_acknowledged(step)
    if meaning is Meaning.PERFORMED:
        _ensure_can_sign_performed(step, signer)
        ensure_certified(signer, step, on)
    elif meaning is Meaning.VERIFIED:
        _ensure_can_verify(step, signer)
    else:
        raise Refusal("meaning_invalid", "Steps are signed as performed or verified.", 422)


def _ensure_can_sign_performed(step: Step, signer: Person) -> None:
    require_role(signer, PERFORM_ROLES, f"sign step {step.number} as performed")
    if performer(step) is not None:
        raise Refusal("already_signed", f"Step {step.number} is already signed as performed.")
    if step.status is not StepStatus.IN_WORK:
        raise Refusal("step_not_started", f"Start step {step.number} before signing it.")
    needs = outstanding(step)
    if needs:
        raise Refusal(
            "step_incomplete", f"Step {step.number} cannot be signed: " + "; ".join(needs)
        )


def _ensure_can_verify(step: Step, signer: Person) -> None:
    if not step.inspection:
        raise Refusal("not_inspection", f"Step {step.number} needs no inspector buy-off.", 422)
    who = performer(step)
    if who is None:
        raise Refusal("not_performed", f"Step {step.number} must be signed as performed first.")
    require_role(signer, VERIFY_ROLES, f"buy off step {step.number}")
    if who == signer.id:
        raise Refusal(
            "same_person",
            f"{signer.name} performed step {step.number} and cannot also buy it off.",
            403,
        )


# --- engineering changes ----------------------------------------------------------------------------


def ensure_redlines_acknowledged(step: Step) -> None:
    """A step in work whose revision changed under it (a redline) is started, recorded on and
    signed only once its operator has acknowledged the change: nobody works to superseded text."""
    if step.redlines:
        red = step.redlines[0]
        raise Refusal(
            "redline_unacknowledged",
            f"Step {step.number} has a redline to acknowledge first: {red.change} "
            f"(rev {red.old_revision} -> {red.new_revision}): {red.reason}",
        )


def _check_redline(trav: Traveler, action: Any, _a: Person, _s: Person | None, wc: str) -> None:
    """Acknowledged where the step is worked, once, by someone who works steps."""
    step = find_step(trav, action.step_id)
    ensure_work_center(step, wc)
    if not any(r.id == action.redline_id for r in step.redlines):
        raise Refusal(
            "redline_not_open",
            f"Step {step.number} has no redline {action.redline_id} waiting to be acknowledged.",
        )


def reworks(disposition: str) -> bool:
    return disposition in ("rework", "repair")


# --- dispositions ---------------------------------------------------------------------------------

ENDING = {Disposition.SCRAP: TravelerStatus.SCRAPPED,
          Disposition.RETURN_TO_VENDOR: TravelerStatus.RETURNED}  # fmt: skip
ENDED_WORDS = {TravelerStatus.SCRAPPED: "scrapped", TravelerStatus.RETURNED: "returned to vendor"}
# Accepting a part that does not conform, or repairing it away from the drawing, is a
# material-review decision: a rationale, and a second person's approval (role: plant config).
SECOND_APPROVAL = frozenset({Disposition.USE_AS_IS, Disposition.REPAIR})
NEEDS_INSTRUCTIONS = frozenset({Disposition.REWORK, Disposition.REPAIR})
SECOND_APPROVER = Role.SUPERVISOR
"""The second approver's role where the plant config names none."""

# The plant's defect codes, and the one an NCR on each kind of item starts with.
DEFECT_CODES: dict[str, str] = {
    "DIM": "dimension", "TRQ": "torque", "MAT": "material", "TOL": "tool", "MRK": "marking",
    "VIS": "visual", "FOD": "foreign object", "DMG": "damage", "DOC": "paperwork",
}  # fmt: skip
_KIND_CODES = {ItemKind.MATERIAL: "MAT", ItemKind.TOOL: "TOL", ItemKind.TEXT: "MRK",
               ItemKind.PASS_FAIL: "VIS", ItemKind.ACKNOWLEDGEMENT: "DOC"}  # fmt: skip
TORQUE_UNITS = frozenset({"nm", "n·m", "n-m", "n.m", "in-lb", "in·lb", "ft-lb", "ft·lb", "lbf·in"})


def default_defect_code(item: DataItem | None, codes: Mapping[str, str] | None = None) -> str:
    """A torque failure is TRQ, another measurement DIM, a wrong lot MAT, and so on; nothing
    where the plant's own list (`codes`; None: DEFECT_CODES) has no such code."""
    if item is None:
        return ""
    if item.kind is ItemKind.MEASUREMENT:
        torque = (item.unit or "").lower() in TORQUE_UNITS or "torque" in item.label.lower()
        code = "TRQ" if torque else "DIM"
    else:
        code = _KIND_CODES.get(item.kind, "DOC")
    return code if code in (DEFECT_CODES if codes is None else codes) else ""


def ensure_defect_code(code: str, codes: Mapping[str, str] | None = None) -> None:
    """A code of the plant's list (`codes`; None: DEFECT_CODES), or a sub-code of one (`DIM-01`
    is a DIM). The station checks it as the NCR is typed; the server when it is raised."""
    known = DEFECT_CODES if codes is None else codes
    if code.upper().partition("-")[0] not in known:
        raise Refusal(
            "defect_code_unknown",
            f"Defect code {code[:32]} is not on the plant's list: {', '.join(known)}.",
            422,
        )


def ended_by(ncrs: Iterable[Ncr]) -> TravelerStatus | None:
    """Scrapped or returned, when an NCR on the traveler was dispositioned so."""
    return next((ENDING[n.disposition] for n in ncrs if n.disposition in ENDING), None)


def settled(ncr: Ncr) -> bool:
    """Dispositioned, and approved a second time where the disposition needs it."""
    if ncr.disposition is None:
        return False
    return ncr.disposition not in SECOND_APPROVAL or ncr.approval_signature is not None


def ncr_status(ncr: Ncr) -> str:
    if ncr.disposition is None:
        return "open"
    return "dispositioned" if settled(ncr) else "awaiting_approval"


def _words(disposition: Disposition) -> str:
    return disposition.value.replace("_", " ")


def ensure_disposition_complete(
    disposition: Disposition, rationale: str, instructions: str
) -> None:
    """Every disposition records why and what to do; use-as-is and repair must say why, rework
    and repair what the rework step is to do."""
    if disposition in SECOND_APPROVAL and len(rationale.strip()) < 3:
        raise Refusal(
            "rationale_missing",
            f"A {_words(disposition)} disposition needs a rationale: why the part is fit to use.",
            422,
        )
    if disposition in NEEDS_INSTRUCTIONS and len(instructions.strip()) < 3:
        raise Refusal(
            "instructions_missing",
            f"A {_words(disposition)} disposition needs instructions for the rework step.",
            422,
        )


def rework_step(
    origin: Step, ncr: str, description: str, failed: DataItem | None, instructions: str = ""
) -> Step:
    """What a rework or repair disposition adds right after the nonconforming step: an inspected
    step to confirm the rework and redo the failed work: the origin's tools scanned again (a
    re-torque needs its wrench) and the failed item measured again (ids 0: not yet stored)."""
    items = [DataItem(id=0, label="Rework done as instructed", kind=ItemKind.ACKNOWLEDGEMENT)]
    tools = [i for i in origin.items if i.kind is ItemKind.TOOL]
    items.extend(DataItem(id=0, label=i.label, kind=i.kind, expected=i.expected) for i in tools)
    if failed is not None:
        again = {"label": f"{failed.label} (re-measure)", "kind": failed.kind, "unit": failed.unit,
                 "nominal": failed.nominal, "lower": failed.lower, "upper": failed.upper,
                 "expected": failed.expected}  # fmt: skip
        items.append(DataItem(id=0, **again))
    return Step(
        id=0,
        number=f"{origin.number}-RW",
        title=f"Rework per {ncr}",
        instructions=f"Rework as dispositioned on {ncr}: {instructions.strip() or description}",
        revision=origin.revision,
        inspection=True,
        work_center=origin.work_center,
        status=StepStatus.NOT_STARTED,
        items=tuple(items),
        signatures=(),
        certification=origin.certification,
    )


def completes_step(step: Step, meaning: Meaning) -> bool:
    """A plain step is done when performed; an inspection step when verified."""
    return meaning is Meaning.VERIFIED or not step.inspection


# --- one check per action kind: the server and the station ask the same question -------------------


def check(
    traveler: Traveler, action: Action, actor: Person, signer: Person | None, work_center: str
) -> None:
    """Everything that decides, from the traveler as it stands, whether `action` may happen;
    raises the refusal. The server's domain calls it before it writes, the station's projection
    before it shows the action as recorded. What only the server can know (the tool crib's
    calibration dates, the stores' lots) the server checks on top."""
    authorize(actor, action.kind, work_center)
    if signer is not None:
        ensure_qualified(signer, work_center)
    ensure_not_ended(traveler)
    CHECKS[action.kind](traveler, action, actor, signer, work_center)


def _check_start(trav: Traveler, action: Any, actor: Person, _s: Person | None, wc: str) -> None:
    ensure_can_start(trav, find_step(trav, action.step_id), actor, wc, acting_day(action))


def _check_pause(trav: Traveler, action: Any, _a: Person, _s: Person | None, _wc: str) -> None:
    step = find_step(trav, action.step_id)
    if step.status is not StepStatus.IN_WORK:
        raise Refusal("step_not_started", f"Step {step.number} is not in work.")


def _check_record(trav: Traveler, action: Any, _a: Person, _s: Person | None, wc: str) -> None:
    step, item = find_item(trav, action.item_id)
    ensure_can_record(trav, step, wc)
    judge(trav, step, item, action.value, acting_day(action))


def _check_sign(trav: Traveler, action: Any, _a: Person, signer: Person | None, _wc: str) -> None:
    step, day = find_step(trav, action.step_id), acting_day(action)
    ensure_can_sign(trav, step, _signer(signer), action.meaning, day)


def _check_raise_ncr(trav: Traveler, action: Any, _a: Person, _s: Person | None, _wc: str) -> None:
    # The defect code is checked against the plant's own list where that list is at hand (the
    # NCR dialog; the server's raise_ncr): ensure_defect_code.
    if action.item_id is not None:
        find_item(trav, action.item_id)
    elif action.step_id is not None:
        find_step(trav, action.step_id)


def _check_place_hold(trav: Traveler, _x: Any, _a: Person, _s: Person | None, _wc: str) -> None:
    """One hold at a time: its reason is what everyone sees, and one signature releases it."""
    if trav.hold is not None:
        raise Refusal(
            "already_on_hold", f"{trav.number} is already on hold: {trav.hold.reason}"
        )


def _check_release(trav: Traveler, _x: Any, _a: Person, signer: Person | None, _wc: str) -> None:
    require_role(_signer(signer), HOLD_ROLES, "release a hold")
    if trav.hold is None:
        raise Refusal("not_on_hold", f"{trav.number} is not on hold.")
    if trav.hold.stop:
        require_role(_signer(signer), ANDON_ROLES, "release a stop")
    # Any open NCR holds the traveler, whichever hold came first.
    ncr = next((n for n in trav.ncrs if not settled(n)), None)
    if ncr is not None and ncr.disposition is not None:
        raise Refusal(
            "approval_missing",
            f"{ncr.number} ({_words(ncr.disposition)}) needs its second approval "
            f"({(ncr.approval_role or SECOND_APPROVER).value}) before the hold is released.",
        )
    if ncr is not None:
        raise Refusal("ncr_open", f"{ncr.number} needs a disposition before the hold is released.")


def _check_disposition(
    trav: Traveler, action: Any, _a: Person, signer: Person | None, _wc: str
) -> None:
    require_role(_signer(signer), DISPOSITION_ROLES, "disposition an NCR")
    ncr = next((n for n in trav.ncrs if n.number == action.ncr), None)
    if ncr is None:
        raise Refusal("not_found", f"{action.ncr} on {trav.number} was not found.", 404)
    if ncr.disposition is not None:
        raise Refusal(
            "ncr_dispositioned", f"{ncr.number} is already dispositioned ({ncr.disposition.value})."
        )
    ensure_disposition_complete(action.disposition, action.rationale, action.instructions)


def find_ncr(trav: Traveler, number: str) -> Ncr:
    ncr = next((n for n in trav.ncrs if n.number == number), None)
    if ncr is None:
        raise Refusal("not_found", f"{number} on {trav.number} was not found.", 404)
    return ncr


def _check_approve(trav: Traveler, action: Any, _a: Person, signer: Person | None, _wc: str) -> None:
    """The second approval: by the plant's second-approver role, never the first approver."""
    who = _signer(signer)
    ncr = find_ncr(trav, action.ncr)
    if ncr.disposition is None:
        raise Refusal("ncr_open", f"{ncr.number} has no disposition to approve yet.")
    if ncr.disposition not in SECOND_APPROVAL or ncr.approval_signature is not None:
        raise Refusal("approval_not_needed", f"{ncr.number} needs no further approval.")
    role = ncr.approval_role or SECOND_APPROVER
    require_role(who, frozenset({role}), f"give the second approval of {ncr.number}")
    first = ncr.disposition_signature
    if first is not None and first.signer_id == who.id:
        raise Refusal(
            "same_person",
            f"{who.name} approved the disposition of {ncr.number} and cannot also give its "
            "second approval.",
            403,
        )


# --- labour ---------------------------------------------------------------------------------------


def ensure_can_clock_on(person: Person, step: str, elsewhere: Sequence[str], limit: int) -> None:
    """One person on one step at a time (`limit` steps where the plant allows more): starting
    another step while clocked on `elsewhere` is refused, naming where they are clocked on."""
    if len(elsewhere) >= limit:
        where = ", ".join(elsewhere[:3])
        raise Refusal(
            "clocked_on_elsewhere",
            f"{person.name} is clocked on {where}: pause it there before starting {step}.",
        )


def clocked_on(trav: Traveler, step_id: int) -> list[LabourEntry]:
    return [entry for entry in trav.labour if entry.step_id == step_id]


def pause_pauses_step(trav: Traveler, step_id: int, person: Person) -> bool:
    """A pause clocks the person off; the step itself pauses unless others stay clocked on it
    (then only this person leaves). Someone not clocked on pauses the step for everyone."""
    on = clocked_on(trav, step_id)
    return not any(e.user_id == person.id for e in on) or all(e.user_id == person.id for e in on)


# --- andon ---------------------------------------------------------------------------------------


def find_andon(trav: Traveler, request_id: int) -> AndonRequest:
    for request in trav.andon:
        if request.id == request_id:
            return request
    raise Refusal(
        "andon_not_found", f"{trav.number} has no open help or stop request {request_id}.", 404
    )


def _check_raise_andon(
    trav: Traveler, action: Any, _a: Person, _s: Person | None, _wc: str
) -> None:
    step = find_step(trav, action.step_id)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already complete.")
    for open_ in trav.andon:
        if open_.step == step.number and open_.kind == action.andon:
            raise Refusal(
                "andon_open",
                f"A {action.andon} request on step {step.number} is already open "
                f"(raised by {open_.raised_by}).",
            )
    if action.andon == "stop":
        _check_place_hold(trav, action, _a, _s, _wc)


def _check_acknowledge(
    trav: Traveler, action: Any, _a: Person, _s: Person | None, _wc: str
) -> None:
    request = find_andon(trav, action.request_id)
    if request.acknowledged_by is not None:
        raise Refusal(
            "andon_acknowledged",
            f"The {request.kind} request on step {request.step} was acknowledged by "
            f"{request.acknowledged_by}.",
        )


def _check_resolve(trav: Traveler, action: Any, _a: Person, _s: Person | None, _wc: str) -> None:
    find_andon(trav, action.request_id)


# --- deviations ------------------------------------------------------------------------------------

DEVIATION_ROLES = frozenset({Role.QUALITY})
"""Who approves a deviation (its first signature); a second approver's role is plant config."""


def deviation_status(approvals: int, approval_role: Role | None) -> DeviationStatus:
    """Raised until quality signs; then awaiting the second approval where the plant names one."""
    if approvals == 0:
        return "raised"
    return "awaiting_approval" if approval_role is not None and approvals < 2 else "approved"


def _limit(value: float) -> str:
    return repr(value)  # as the deviation said it: 13.0, 0.08


def deviation_text(dev: Deviation) -> str:
    """One line for the station's step and the as-built: "DEV-0003: upper limit 13.0 until
    2027-01-31, 2 units (1 used) - Fastener torque"."""
    if dev.substitute is not None:
        departs = f"{dev.substitute} accepted"
    else:
        limits = [f"{w} limit {_limit(v)}" for w, v in (("lower", dev.lower), ("upper", dev.upper))
                  if v is not None]  # fmt: skip
        departs = " and ".join(limits)
    reach = f" until {dev.until:%Y-%m-%d}" if dev.until is not None else ""
    if dev.units is not None:
        reach += f", {dev.units} unit{'s' if dev.units != 1 else ''} ({len(dev.used_by)} used)"
    state = {"raised": " - NOT APPROVED YET", "awaiting_approval": " - awaiting 2nd approval"}
    return f"{dev.number}: {departs}{reach} - {dev.item}{state.get(dev.status, '')}"


def deviation_covers(dev: Deviation, trav: Traveler, step: Step, item: DataItem) -> bool:
    """Within its scope: the part number and travelers it names, its steps, its item (by label),
    and a departure of the item's kind (limits for a measurement, a substitute otherwise)."""
    kinds = {ItemKind.TOOL, ItemKind.MATERIAL} if dev.substitute else {ItemKind.MEASUREMENT}
    return (
        (dev.part_number is None or dev.part_number.upper() == trav.part_number.upper())
        and (not dev.travelers or trav.number in dev.travelers)
        and (not dev.steps or step.number in dev.steps)
        and dev.item.strip().lower() == item.label.strip().lower()
        and item.kind in kinds
    )


def deviation_allows(dev: Deviation, item: DataItem, value: str) -> bool:
    """Whether `value` (a number as read; a tool code; a lot's part number) is what it allows."""
    if dev.substitute is not None:
        return fnmatchcase(value.upper(), dev.substitute.upper())
    widened = {"lower": dev.lower if dev.lower is not None else item.lower,
               "upper": dev.upper if dev.upper is not None else item.upper}  # fmt: skip
    return in_tolerance(item.model_copy(update=widened), Decimal(value))


def ensure_deviation_effective(dev: Deviation, trav: Traveler, on: date) -> None:
    """Approved by signature, not past its last day, and with a unit left for a traveler that
    has not relied on it yet (a unit is used when a traveler first relies on it)."""
    if dev.status == "raised":
        raise Refusal("deviation_not_approved", f"{dev.number} is not approved yet.")
    if dev.status == "awaiting_approval":
        role = dev.approval_role.value if dev.approval_role else "second approver"
        raise Refusal(
            "deviation_not_approved",
            f"{dev.number} is not approved yet: it needs its second approval ({role}).",
        )
    if dev.until is not None and dev.until < on:
        raise Refusal("deviation_expired", f"{dev.number} expired on {dev.until:%Y-%m-%d}.")
    used = len(dev.used_by)
    if dev.units is not None and trav.number not in dev.used_by and used >= dev.units:
        raise Refusal(
            "deviation_used_up", f"{dev.number} is used up: {used} of {dev.units} units."
        )


def deviation_for(
    trav: Traveler, step: Step, item: DataItem, value: str, on: date
) -> Deviation | None:
    """The deviation in effect that allows `value` on this item, if any; when deviations cover
    it but none is in effect, the refusal of the first says why (expired, used up, unapproved)."""
    why: Refusal | None = None
    for dev in trav.deviations:
        if deviation_covers(dev, trav, step, item) and deviation_allows(dev, item, value):
            try:
                ensure_deviation_effective(dev, trav, on)
            except Refusal as refusal:
                why = why or refusal
                continue
            return dev
    if why is not None:
        raise why
    return None


@dataclass(frozen=True)
class Judged:
    """A value read and judged, with the deviation it relies on."""

    value: str
    passed: bool | None
    deviation: str | None = None
    note: str = ""
    """Why a deviation that would accept an out-of-tolerance number does not: the number is
    still recorded (as failing: it needs an NCR), and the operator is told why."""


def judge(trav: Traveler, step: Step, item: DataItem, raw: str, on: date) -> Judged:
    """`evaluate` and `ensure_expected`, with the deviations in effect: a number outside the
    limits but inside a deviation's passes under it; a tool other than the one expected is
    accepted under one (a refusal says why a deviation does not apply)."""
    value, passed = evaluate(item, raw)
    wanted = expected_of(trav, item)
    if item.kind is ItemKind.TOOL and wanted and not fnmatchcase(value.upper(), wanted.upper()):
        dev = deviation_for(trav, step, item, value, on)
        if dev is None:
            ensure_expected(trav, item, value)
        return Judged(value, passed, None if dev is None else dev.number)
    ensure_expected(trav, item, value)
    if item.kind is ItemKind.MEASUREMENT and passed is False:
        try:
            dev = deviation_for(trav, step, item, value, on)
        except Refusal as refusal:
            return Judged(value, passed, note=refusal.detail)
        if dev is not None:
            return Judged(value, True, dev.number)
    return Judged(value, passed)


def lot_deviation(
    trav: Traveler, step: Step, item: DataItem, lot: str, part: str, on: date
) -> Deviation | None:
    """`ensure_lot_part` with the deviations in effect: a lot of another part is accepted under
    a deviation that names it as a substitute (the server knows the lot's part)."""
    wanted = expected_of(trav, item)
    if wanted is None or fnmatchcase(part.upper(), wanted.upper()):
        return None
    dev = deviation_for(trav, step, item, part, on)
    ensure_lot_part(trav, item, lot, part, () if dev is None else (dev.substitute or "",))
    return dev


def step_deviations(trav: Traveler, step: Step) -> list[Deviation]:
    """The deviations covering an item of the step: what the station shows on it."""
    return [
        d for d in trav.deviations if any(deviation_covers(d, trav, step, i) for i in step.items)
    ]


def awaiting_approval_by(trav: Traveler, person: Person) -> list[Deviation]:
    """The deviations on the traveler this person could sign next (as `_check_approve_deviation`
    decides, without the day): the station offers its key to them alone."""
    return [dev for dev in trav.deviations if _may_approve_next(dev, person)]


def _may_approve_next(dev: Deviation, person: Person) -> bool:
    if dev.status == "raised":
        return has_role(person, DEVIATION_ROLES)
    return (
        dev.status == "awaiting_approval"
        and has_role(person, {dev.approval_role or SECOND_APPROVER})
        and all(a.signer_id != person.id for a in dev.approvals)
    )


def find_deviation(trav: Traveler, number: str) -> Deviation:
    dev = next((d for d in trav.deviations if d.number == number.strip().upper()), None)
    if dev is None:
        raise Refusal("not_found", f"{number[:20]} does not apply to {trav.number}.", 404)
    return dev


def _check_approve_deviation(
    trav: Traveler, action: Any, _a: Person, signer: Person | None, _wc: str
) -> None:
    """Quality signs first; the plant's second approver (never the same person) second."""
    who, dev = _signer(signer), find_deviation(trav, action.deviation)
    if dev.status == "approved":
        raise Refusal("deviation_approved", f"{dev.number} is already approved.")
    day = acting_day(action)
    if dev.until is not None and dev.until < day:
        raise Refusal("deviation_expired", f"{dev.number} expired on {dev.until:%Y-%m-%d}.")
    if dev.status == "raised":
        require_role(who, DEVIATION_ROLES, f"approve {dev.number}")
        return
    role = dev.approval_role or SECOND_APPROVER
    require_role(who, frozenset({role}), f"give the second approval of {dev.number}")
    if any(a.signer_id == who.id for a in dev.approvals):
        raise Refusal(
            "same_person",
            f"{who.name} approved {dev.number} and cannot also give its second approval.",
            403,
        )


def _signer(signer: Person | None) -> Person:
    if signer is None:
        raise Refusal("signature_unproven", "A signature needs the signer's badge and PIN.", 403)
    return signer


Check = Callable[[Traveler, Any, Person, Person | None, str], None]

CHECKS: dict[str, Check] = {
    "start_step": _check_start,
    "pause_step": _check_pause,
    "record_value": _check_record,
    "sign_step": _check_sign,
    "raise_ncr": _check_raise_ncr,
    "place_hold": _check_place_hold,
    "release_hold": _check_release,
    "disposition_ncr": _check_disposition,
    "approve_disposition": _check_approve,
    "raise_andon": _check_raise_andon,
    "acknowledge_andon": _check_acknowledge,
    "resolve_andon": _check_resolve,
    "acknowledge_redline": _check_redline,
    "approve_deviation": _check_approve_deviation,
}


# --- corrections and voids ---------------------------------------------------------------------------

VOID_ROLES = frozenset({Role.QUALITY})
# Typed values are corrected; a tool or lot is scanned again (its use or consumption is its own
# record, which a correction of the text would leave standing).
CORRECTABLE = frozenset({ItemKind.MEASUREMENT, ItemKind.PASS_FAIL, ItemKind.TEXT})


def ensure_reason(reason: str, what: str) -> None:
    if len(reason.strip()) < 3:
        raise Refusal("reason_missing", f"{what} needs a reason (at least 3 characters).", 422)


def ensure_correctable(trav: Traveler, step: Step, item: DataItem, work_center: str) -> None:
    """A value is corrected only before its step is signed, on a step in work at its work
    center, and only where there is one to correct. After sign-off the signature covers the
    value: quality voids the signature first."""
    if step.status is StepStatus.COMPLETE or performer(step) is not None:
        raise Refusal(
            "step_signed",
            f"Step {step.number} is signed: its values can no longer be corrected. Quality "
            "voids the signature first if the record is wrong.",
        )
    ensure_can_record(trav, step, work_center)
    if item.kind not in CORRECTABLE:
        raise Refusal(
            "not_correctable",
            f"{item.label}: a {item.kind.value} is not corrected; scan the right one again.",
            422,
        )
    if item.latest is None:
        raise Refusal("nothing_to_correct", f"{item.label} has no value to correct yet.", 422)


def _check_correct(trav: Traveler, action: Any, _a: Person, _s: Person | None, wc: str) -> None:
    step, item = find_item(trav, action.item_id)
    ensure_correctable(trav, step, item, wc)
    assert item.latest is not None
    if item.latest.value != action.corrects:
        raise Refusal(
            "value_changed",
            f"{item.label} is now {item.latest.value[:40]}, not {action.corrects[:40]}: "
            "look at it again before correcting.",
        )
    value, _passed = evaluate(item, action.value)
    ensure_expected(trav, item, value)
    if value == item.latest.value:
        raise Refusal("value_unchanged", f"{item.label} is {value} already: nothing to correct.", 422)
    ensure_reason(action.reason, "A correction")


def still_failed(item: DataItem, passed: bool | None, others_failed: bool | None = None) -> bool:
    """Whether the item has a failure on record once its value in effect is corrected: the
    corrected value no longer counts (a mistake, not a reading); any other failed value does.
    The server knows `others_failed` from the item's values; the station, which holds only the
    value in effect, infers it (a failure on record while that value passed is another's)."""
    if others_failed is None:
        others_failed = item.failed_before and not (
            item.latest is not None and item.latest.passed is False
        )
    return passed is False or others_failed


def voided_by(step: Step, meaning: Meaning) -> list[SignatureManifest]:
    """The signatures a void of `meaning` takes: a buy-off alone, or a sign-off and the buy-off
    that followed it (the inspector bought off work that is no longer signed for)."""
    if meaning is Meaning.PERFORMED:
        return list(step.signatures)
    return [s for s in step.signatures if s.meaning is Meaning.VERIFIED]


def _check_void(trav: Traveler, action: Any, _a: Person, signer: Person | None, _wc: str) -> None:
    """Quality alone voids, with a reason, a signature that stands, on a step no later step's
    signature relies on (those are voided first, last step first)."""
    step = find_step(trav, action.step_id)
    require_role(_signer(signer), VOID_ROLES, f"void a signature on step {step.number}")
    if action.meaning not in (Meaning.PERFORMED, Meaning.VERIFIED):
        raise Refusal("meaning_invalid", "A step's performed or verified signature is voided.", 422)
    if not any(s.meaning is action.meaning for s in step.signatures):
        raise Refusal(
            "not_signed", f"Step {step.number} has no {action.meaning.value} signature to void."
        )
    later = trav.steps[trav.steps.index(step) + 1 :]
    signed = next((s for s in later if s.signatures), None)
    if signed is not None:
        raise Refusal(
            "later_step_signed",
            f"Step {signed.number}, after step {step.number}, is signed: void its signatures "
            "first.",
        )
    ensure_reason(action.reason, "A void")


# The actor of a correction records values; a void's signer must be quality (_check_void).
ACTION_ROLES.update(
    {"correct_value": (PERFORM_ROLES, "correct values"),
     "void_signature": (WORK_ROLES, "work on travelers")}
)  # fmt: skip
CHECKS.update({"correct_value": _check_correct, "void_signature": _check_void})
# --- maintenance on assets -----------------------------------------------------------------------


def maintenance_task_refused(
    on_asset: bool, serial: str | None, lot: str | None, task: str | None
) -> Refusal | None:
    """A traveler is a unit (serial or lot) or a maintenance task on an asset (task number),
    never both: the import refuses a mix before anything is written."""
    if on_asset and (serial or lot):
        return Refusal(
            "asset_and_serial",
            "a maintenance task on an asset has no serial or lot: give the asset or serials, "
            "not both",
            422,
        )
    if on_asset and not (task and task.strip()):
        return Refusal("task_missing", "a maintenance task on an asset needs its task number", 422)
    if task is not None and not on_asset:
        return Refusal(
            "task_without_asset", "a task number belongs to a work order on an asset", 422
        )
    return None


def asset_kind_refused(asset: str, kind: str, given: str) -> Refusal | None:
    """An asset keeps the kind it was first imported with: the same id as another kind is
    another thing, most likely a typing mistake."""
    if kind == given:
        return None
    return Refusal("asset_kind_clash", f"asset {asset} is {kind} in the plant, not {given}", 422)
# --- documents at revision ---------------------------------------------------------------------


def ensure_document_known(number: str, revision: str, revisions: Sequence[str]) -> None:
    """A step may name, and a station may open, only a document the plant has at that revision:
    `revisions` are the ones the plant has of `number` (none: it has no such document)."""
    if revision in revisions:
        return
    if not revisions:
        raise Refusal("document_unknown", f"The plant has no document {number}.", 404)
    raise Refusal(
        "document_revision_unknown",
        f"The plant has no revision {revision} of document {number} "
        f"(it has {', '.join(revisions)}).",
        404,
    )


# --- evidence: photos and files ------------------------------------------------------------------

EVIDENCE_TYPES: dict[ItemKind, frozenset[str]] = {
    ItemKind.PHOTO: frozenset({"image/png", "image/jpeg"}),
    ItemKind.FILE: frozenset({"image/png", "image/jpeg", "application/pdf"}),
}
"""What each evidence item accepts, by the file's own bytes (kiosk.server.files sniffs them)."""


def upload_hint(item: DataItem) -> str:
    what = "a photo" if item.kind is ItemKind.PHOTO else "a file"
    return f"{what} is recorded by uploading it from a phone (Ctrl+F: upload code), not typed."


def ensure_can_attach(trav: Traveler, item_id: int, person: Person, work_center: str) -> DataItem:
    """A photo or file is attached by someone who may record values, to an evidence item of a
    step in work at this work center: checked when the upload link is asked for (station and
    server) and again when the file arrives (server), since the step may have moved on."""
    authorize(person, "attach_file", work_center)
    ensure_not_ended(trav)
    step, item = find_item(trav, item_id)
    if item.kind not in EVIDENCE_TYPES:
        raise Refusal(
            "not_evidence", f"{item.label} is not a photo or file item: enter its value.", 422
        )
    ensure_can_record(trav, step, work_center)
    return item
