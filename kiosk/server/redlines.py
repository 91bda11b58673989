"""Step revisions made by engineering changes, as the station and the as-built read them, and the
operator's acknowledgement of a redline (an action like any other: proven actor, audited).

A step revision is a tracked row (records.TRACKED["revision"]): issued with all its columns in
the audit chain (kiosk.server.revise), acknowledged as an amendment of it, so `kiosk audit
verify` re-derives both.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, select

from kiosk import rules
from kiosk.server import schema as t
from kiosk.wire import AcknowledgeRedline, StepRevision, Traveler

if TYPE_CHECKING:
    from kiosk.server.domain import Change
    from kiosk.server.views import NameLookup

R = t.step_revisions.c

_QUERY = (
    select(
        t.step_revisions,
        t.steps.c.number.label("step"),
        t.engineering_changes.c.number.label("change"),
        t.engineering_changes.c.reason,
    )
    .join(t.steps, t.steps.c.id == R.step_id)
    .join(t.engineering_changes, t.engineering_changes.c.id == R.change_id)
    .order_by(R.id)
)
_UNACKNOWLEDGED = and_(R.redline.is_(True), R.acknowledged_at.is_(None))
# A redline of the step (views' steps read: `t.steps` is the step) not yet acknowledged.
OPEN_OF_STEP = and_(R.step_id == t.steps.c.id, _UNACKNOWLEDGED)
# Read for the steps that have any (the steps' read says which): one indexed read.
_OPEN = _QUERY.where(R.step_id.in_(bindparam("steps", expanding=True)), _UNACKNOWLEDGED)


def revision(r: Any, names: NameLookup) -> StepRevision:
    return StepRevision(
        id=r.id,
        step=r.step,
        change=r.change,
        reason=r.reason,
        old_revision=r.old_revision,
        new_revision=r.new_revision,
        changes=tuple(json.loads(r.changes)),
        issued_at=r.issued_at,
        redline=r.redline,
        acknowledged_by=None if r.acknowledged_by is None else names.user(r.acknowledged_by),
        acknowledged_at=r.acknowledged_at,
        station=None if r.station_id is None else names.station(r.station_id),
    )


def open_redlines(
    conn: Connection, step_ids: list[int], names: NameLookup
) -> dict[int, tuple[StepRevision, ...]]:
    """step id → its redlines not yet acknowledged (most steps: none, and not in the answer)."""
    if not step_ids:
        return {}
    found: dict[int, list[StepRevision]] = {}
    for r in conn.execute(_OPEN, {"steps": step_ids}):
        found.setdefault(r.step_id, []).append(revision(r, names))
    return {step_id: tuple(reds) for step_id, reds in found.items()}


def all_revisions(conn: Connection, traveler_id: int) -> tuple[StepRevision, ...]:
    """Every revision the traveler's steps took, acknowledged redlines too: for the as-built."""
    from kiosk.server.views import NameLookup  # views reads open redlines from this module

    names = NameLookup(conn)
    rows = conn.execute(_QUERY.where(R.traveler_id == traveler_id))
    return tuple(revision(r, names) for r in rows)


def acknowledge(change: Change, trav: Traveler, _tid: int, action: AcknowledgeRedline) -> str:
    step = rules.find_step(trav, action.step_id)  # rules.check found the redline open on it
    red = next(r for r in step.redlines if r.id == action.redline_id)
    values = {
        "acknowledged_by": change.actor.id,
        "acknowledged_at": change.now,
        "station_id": change.station.id,
    }
    change.amend("acknowledge_redline", "revision", red.id, values)
    return (
        f"{change.actor.name} acknowledged {red.change} on step {step.number}: "
        f"now at rev {red.new_revision}."
    )
