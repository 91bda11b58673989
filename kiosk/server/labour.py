"""Labour time: who was clocked on which step, from start or resume to pause, sign-off, stop,
sign-out or idle lock.

Each interval is a tracked row (records.TRACKED["labour"]): written with an audit record of all
its columns and closed with one of the columns it changes, so `kiosk audit verify` re-derives it.
The rules (one step per person unless the plant allows more; who a pause clocks off) are in
kiosk.rules, shared with the station.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from kiosk import rules
from kiosk.server import audit, records, views
from kiosk.server import schema as t
from kiosk.wire import LabourEntry, LabourInterval, Person, StationConfig, Step, Traveler

if TYPE_CHECKING:
    from kiosk.server.domain import Change

L = t.labour_intervals.c


def open_entries(
    conn: Connection, traveler_id: int, names: views.NameLookup
) -> tuple[LabourEntry, ...]:
    """Who is clocked on the traveler's steps now, for the traveler as everyone sees it."""
    rows = conn.execute(
        select(t.labour_intervals, t.steps.c.number)
        .join(t.steps, t.steps.c.id == L.step_id)
        .where(L.traveler_id == traveler_id, L.ended_at.is_(None))
        .order_by(L.id)
    )
    return tuple(
        LabourEntry(
            user_id=r.user_id,
            person=names.user(r.user_id),
            step_id=r.step_id,
            step=r.number,
            station=names.station(r.station_id),
            since=r.started_at,
        )
        for r in rows
    )


def _steps_per_person(conn: Connection, station_id: int) -> int:
    raw = conn.execute(select(t.stations.c.config).where(t.stations.c.id == station_id)).scalar()
    return StationConfig.model_validate_json(raw or "{}").steps_per_person


def clock_on(change: Change, trav: Traveler, tid: int, step: Step) -> bool:
    """Clock the actor on `step` (False when they already are); refused while they are clocked
    on as many other steps as the plant allows."""
    person = change.actor
    mine = change.conn.execute(
        select(L.step_id, t.travelers.c.number, t.steps.c.number.label("step"))
        .join(t.travelers, t.travelers.c.id == L.traveler_id)
        .join(t.steps, t.steps.c.id == L.step_id)
        .where(L.user_id == person.id, L.ended_at.is_(None))
    ).all()
    if any(r.step_id == step.id for r in mine):
        return False
    elsewhere = [f"{r.number} step {r.step}" for r in mine]
    limit = _steps_per_person(change.conn, change.station.id)
    rules.ensure_can_clock_on(person, f"{trav.number} step {step.number}", elsewhere, limit)
    row = {
        "traveler_id": tid,
        "step_id": step.id,
        "user_id": person.id,
        "station_id": change.station.id,
        "started_at": change.now,
        "ended_at": None,
        "end_reason": None,
    }
    change.insert("clock_on", "labour", row)
    return True


def clock_off(change: Change, step_id: int, reason: str, person: Person | None = None) -> int:
    """Close the open intervals on a step (only `person`'s, when given); how many closed."""
    where = [L.step_id == step_id, L.ended_at.is_(None)]
    if person is not None:
        where.append(L.user_id == person.id)
    ids = change.conn.execute(select(L.id).where(*where).order_by(L.id)).scalars().all()
    for interval in ids:
        change.amend(
            "clock_off", "labour", interval, {"ended_at": change.now, "end_reason": reason}
        )
    return len(ids)


SESSION_ENDS_CLOCKING_OFF = frozenset({"sign_out", "idle_lock"})
"""A new badge at a shared console is the next person stepping up, not this one leaving: they
stay clocked on (a crew works one step together) until they pause, sign, sign out or idle out."""


def clock_off_people(
    conn: Connection, user_ids: Iterable[int], station: Any, reason: str, now: datetime
) -> int:
    """Sign-out or the idle lock ends a person's session: it clocks them off every step they are
    on at that station, with that reason."""
    users = list(user_ids)
    if not users or reason not in SESSION_ENDS_CLOCKING_OFF:
        return 0
    rows = conn.execute(
        select(L.id, L.user_id)
        .where(L.user_id.in_(users), L.station_id == station.id, L.ended_at.is_(None))
        .order_by(L.id)
    ).all()
    names = views.NameLookup(conn)
    for interval, user_id in rows:
        values = {"ended_at": now, "end_reason": reason}
        conn.execute(update(t.labour_intervals).where(L.id == interval).values(**values))
        audit.append(
            conn,
            action="clock_off",
            entity=f"labour:{interval}",
            actor=names.user(user_id),
            station=station.name,
            new=records.state(values),
            now=now,
        )
    return len(rows)


# --- reading: the as-built and the ERP export --------------------------------------------------------


def intervals(
    conn: Connection,
    now: datetime,
    *,
    traveler_id: int | None = None,
    since: datetime | None = None,
) -> list[LabourInterval]:
    """Labour intervals, oldest first: one traveler's, or every one still open at or started
    after `since` (an interval crossing midnight belongs to both days' exports)."""
    query = (
        select(
            t.labour_intervals,
            t.travelers.c.number.label("traveler"),
            t.work_orders.c.number.label("work_order"),
            t.steps.c.number.label("step"),
            t.operations.c.work_center,
        )
        .join(t.travelers, t.travelers.c.id == L.traveler_id)
        .join(t.work_orders, t.work_orders.c.id == t.travelers.c.work_order_id)
        .join(t.steps, t.steps.c.id == L.step_id)
        .join(t.operations, t.operations.c.id == t.steps.c.operation_id)
        .order_by(L.started_at, L.id)
    )
    if traveler_id is not None:
        query = query.where(L.traveler_id == traveler_id)
    if since is not None:
        query = query.where((L.ended_at.is_(None)) | (L.ended_at >= since))
    names = views.NameLookup(conn)
    return [_interval(r, names, now) for r in conn.execute(query)]


def _interval(r: Any, names: views.NameLookup, now: datetime) -> LabourInterval:
    end = r.ended_at or now
    return LabourInterval(
        id=r.id,
        traveler=r.traveler,
        work_order=r.work_order,
        step=r.step,
        work_center=r.work_center,
        person=names.user(r.user_id),
        user_id=r.user_id,
        station=names.station(r.station_id),
        started_at=r.started_at,
        ended_at=r.ended_at,
        end_reason=r.end_reason,
        minutes=round(max((end - r.started_at).total_seconds(), 0.0) / 60, 2),
    )


CSV_COLUMNS = (
    "id", "traveler", "work_order", "step", "work_center", "person", "user_id", "station",
    "started_at", "ended_at", "end_reason", "minutes",
)  # fmt: skip


def csv_rows(found: Iterable[LabourInterval]) -> Iterable[dict[str, Any]]:
    """Rows for the ERP's costing import: ISO 8601 UTC times, an open interval's end empty."""
    for interval in found:
        row = interval.model_dump(mode="json")
        yield {column: "" if row[column] is None else row[column] for column in CSV_COLUMNS}
