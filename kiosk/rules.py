"""Domain rules of traveler execution, in one place.

The server enforces them before it changes anything; the station calls the very same functions on
its cached traveler for instant feedback. They work on wire models only, so they need neither a
database nor a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from kiosk.wire import (
    DataItem,
    ItemKind,
    Meaning,
    Person,
    Role,
    Step,
    StepStatus,
    Traveler,
    TravelerStatus,
)

PERFORM_ROLES = frozenset({Role.OPERATOR, Role.INSPECTOR, Role.SUPERVISOR})
VERIFY_ROLES = frozenset({Role.INSPECTOR, Role.QUALITY})
HOLD_ROLES = frozenset({Role.SUPERVISOR, Role.QUALITY})
DISPOSITION_ROLES = frozenset({Role.QUALITY})
UNLOCK_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
ADMIN_ROLES = frozenset({Role.ADMIN})

PASS_WORDS = {"pass": "pass", "p": "pass", "ok": "pass", "fail": "fail", "f": "fail", "nok": "fail"}
ACK_WORDS = {"acknowledged", "ack", "yes", "y"}


class Refusal(Exception):
    """A rule said no. `status` is the HTTP status the server answers with."""

    def __init__(self, rule: str, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail
        self.status = status


def has_role(person: Person, allowed: Iterable[Role]) -> bool:
    return not set(person.roles).isdisjoint(allowed)


def require_role(person: Person, allowed: frozenset[Role], doing: str) -> None:
    if not has_role(person, allowed):
        wanted = " or ".join(sorted(r.value for r in allowed))
        raise Refusal("role_not_allowed", f"{person.name} may not {doing}: needs {wanted}.", 403)


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
    if item.kind is ItemKind.ACKNOWLEDGEMENT:
        if text.lower() not in ACK_WORDS:
            raise Refusal("value_invalid", f"{item.label}: confirm with 'acknowledged'.", 422)
        return "acknowledged", True
    return text, None


def _evaluate_measurement(item: DataItem, text: str) -> tuple[str, bool]:
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        raise Refusal(
            "value_invalid", f"{item.label}: '{text[:20]}' is not a number.", 422
        ) from None
    if not math.isfinite(number):
        raise Refusal("value_invalid", f"{item.label}: '{text[:20]}' is not a number.", 422)
    return f"{number:g}", in_tolerance(item, number)


def in_tolerance(item: DataItem, number: float) -> bool:
    low = -math.inf if item.lower is None else item.lower
    high = math.inf if item.upper is None else item.upper
    return low <= number <= high


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


def traveler_status(steps: Sequence[Step], on_hold: bool) -> TravelerStatus:
    """On hold above all; complete when every step is; in work once any step has begun."""
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


def ensure_not_on_hold(traveler: Traveler) -> None:
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


def ensure_can_start(traveler: Traveler, step: Step, person: Person, work_center: str) -> None:
    """Gating happens before work starts: whatever would refuse the sign-off refuses the start."""
    ensure_not_on_hold(traveler)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already complete.")
    ensure_predecessors_complete(traveler, step)
    ensure_work_center(step, work_center)
    require_role(person, PERFORM_ROLES, f"work step {step.number}")


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


def ensure_can_sign(traveler: Traveler, step: Step, signer: Person, meaning: Meaning) -> None:
    ensure_not_on_hold(traveler)
    ensure_predecessors_complete(traveler, step)
    if step.status is StepStatus.COMPLETE:
        raise Refusal("step_complete", f"Step {step.number} is already signed off.")
    if meaning is Meaning.PERFORMED:
        _ensure_can_sign_performed(step, signer)
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


def completes_step(step: Step, meaning: Meaning) -> bool:
    """A plain step is done when performed; an inspection step when verified."""
    return meaning is Meaning.VERIFIED or not step.inspection
