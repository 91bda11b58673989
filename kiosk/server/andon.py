"""Help and stop requests (andon): an operator calls a supervisor to a step.

A request is a tracked row (records.TRACKED["andon"]): raised, acknowledged and resolved as
actions, each change in the audit chain. A stop also places a hold (written by the domain, like
every hold), and the hold is marked as a stop so that only a supervisor releases it
(rules._check_release).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, exists, select

from kiosk import rules
from kiosk.server import schema as t
from kiosk.server import views
from kiosk.wire import AcknowledgeAndon, AndonRequest, Hold, RaiseAndon, ResolveAndon, Traveler

if TYPE_CHECKING:
    from kiosk.server.domain import Change

A = t.andon_requests.c


def _query() -> Any:
    return (
        select(
            t.andon_requests,
            t.travelers.c.number.label("traveler"),
            t.steps.c.number.label("step"),
        )
        .join(t.travelers, t.travelers.c.id == A.traveler_id)
        .join(t.steps, t.steps.c.id == A.step_id)
        .order_by(A.id)
    )


def _request(r: Any, names: views.NameLookup) -> AndonRequest:
    def who(user_id: int | None) -> str | None:
        return None if user_id is None else names.user(user_id)

    return AndonRequest(
        id=r.id,
        traveler=r.traveler,
        step=r.step,
        kind=r.kind,
        reason=r.reason,
        raised_by=names.user(r.raised_by),
        station=names.station(r.station_id),
        raised_at=r.raised_at,
        acknowledged_by=who(r.acknowledged_by),
        acknowledged_at=r.acknowledged_at,
        resolved_by=who(r.resolved_by),
        resolved_at=r.resolved_at,
        resolution=r.resolution,
    )


def open_requests(
    conn: Connection, names: views.NameLookup, traveler_id: int | None = None
) -> tuple[AndonRequest, ...]:
    """Requests not yet resolved: one traveler's, or the whole plant's (board, admin console)."""
    query = _query().where(A.resolved_at.is_(None))
    if traveler_id is not None:
        query = query.where(A.traveler_id == traveler_id)
    return tuple(_request(r, names) for r in conn.execute(query))


def all_requests(conn: Connection, traveler_id: int) -> tuple[AndonRequest, ...]:
    """Every request on a traveler, resolved ones too: for the as-built."""
    names = views.NameLookup(conn)
    return tuple(
        _request(r, names) for r in conn.execute(_query().where(A.traveler_id == traveler_id))
    )


def marked(conn: Connection, hold: Hold | None) -> Hold | None:
    """The hold, marked when a stop request placed it."""
    if hold is None or hold.id < 1:
        return hold
    stop = conn.execute(select(exists().where(A.hold_id == hold.id))).scalar()
    return hold.model_copy(update={"stop": True}) if stop else hold


# --- actions --------------------------------------------------------------------------------------


def raise_request(
    change: Change, trav: Traveler, tid: int, action: RaiseAndon, hold_id: int | None
) -> str:
    step = rules.find_step(trav, action.step_id)
    row = {
        "traveler_id": tid,
        "step_id": step.id,
        "kind": action.andon,
        "reason": action.reason,
        "raised_by": change.actor.id,
        "station_id": change.station.id,
        "raised_at": change.now,
        "hold_id": hold_id,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_by": None,
        "resolved_at": None,
        "resolution": None,
    }
    change.insert("raise_andon", "andon", row)
    if action.andon == "stop":
        return f"Stop on {trav.number} step {step.number}: on hold until a supervisor releases it."
    return f"Help requested on {trav.number} step {step.number}: a supervisor is called."


def acknowledge(change: Change, trav: Traveler, _tid: int, action: AcknowledgeAndon) -> str:
    request = rules.find_andon(trav, action.request_id)
    values = {"acknowledged_by": change.actor.id, "acknowledged_at": change.now}
    change.amend("acknowledge_andon", "andon", request.id, values)
    return f"{change.actor.name} acknowledged the {request.kind} request on step {request.step}."


def resolve(change: Change, trav: Traveler, _tid: int, action: ResolveAndon) -> str:
    request = rules.find_andon(trav, action.request_id)
    values: dict[str, Any] = {
        "resolved_by": change.actor.id,
        "resolved_at": change.now,
        "resolution": action.resolution,
    }
    if request.acknowledged_by is None:  # resolved on the spot: seen and answered at once
        values = {"acknowledged_by": change.actor.id, "acknowledged_at": change.now, **values}
    change.amend("resolve_andon", "andon", request.id, values)
    still = " (the traveler stays on hold until released)" if trav.hold and trav.hold.stop else ""
    return f"{change.actor.name} resolved the {request.kind} request on step {request.step}{still}."
