"""Read side: builds wire models from the store in a handful of queries per traveler."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, RowMapping, Table, func, select

from kiosk import rules
from kiosk.server import schema as t
from kiosk.wire import (
    DataItem,
    Hold,
    ItemKind,
    Meaning,
    Ncr,
    Operation,
    Person,
    RecordedValue,
    Role,
    SignatureManifest,
    Step,
    StepStatus,
    Traveler,
    TravelerStatus,
    TravelerSummary,
)


class NotFound(rules.Refusal):
    def __init__(self, what: str) -> None:
        super().__init__("not_found", f"{what} was not found.", 404)


def person_from_row(row: RowMapping | Any) -> Person:
    return Person(id=row.id, name=row.name, roles=tuple(Role(r) for r in row.roles.split(",")))


class Names(dict[int, str]):
    """id → name for one table, refreshed when an unknown id shows up.

    Names of people and stations never change once written (there is no rename), so a cache per
    database saves two queries on every traveler read; a new person or station is a cache miss.
    """

    def __init__(self, table: Table) -> None:
        super().__init__()
        self.table = table

    def lookup(self, conn: Connection, key: int) -> str:
        if key not in self:
            self.update(
                {r.id: r.name for r in conn.execute(select(self.table.c.id, self.table.c.name))}
            )
        return self[key]


_NAMES: WeakKeyDictionary[Engine, tuple[Names, Names]] = WeakKeyDictionary()


class NameLookup:
    """Person and station names for reads on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        cached = _NAMES.get(conn.engine)
        if cached is None:
            cached = _NAMES[conn.engine] = (Names(t.users), Names(t.stations))
        self._users, self._stations = cached

    def user(self, user_id: int) -> str:
        return self._users.lookup(self.conn, user_id)

    def station(self, station_id: int) -> str:
        return self._stations.lookup(self.conn, station_id)


def traveler_row(conn: Connection, number: str, *, lock: bool = False) -> RowMapping:
    query = select(t.travelers).where(t.travelers.c.number == number)
    if lock:
        # Serialises actions on one traveler across server processes (PostgreSQL row lock).
        query = query.with_for_update()
    row = conn.execute(query).mappings().one_or_none()
    if row is None:
        raise NotFound(f"Traveler {number}")
    return row


def recorded_value(row: Any, names: NameLookup) -> RecordedValue:
    return RecordedValue(
        id=row.id,
        value=row.value,
        passed=row.passed,
        recorded_by=names.user(row.user_id),
        server_time=row.server_time,
        station_time=row.station_time,
        station=names.station(row.station_id),
        offline=row.offline,
    )


def signature_manifest(row: Any, names: NameLookup) -> SignatureManifest:
    return SignatureManifest(
        id=row.id,
        signer_id=row.user_id,
        printed_name=row.printed_name,
        meaning=Meaning(row.meaning),
        server_time=row.server_time,
        station=names.station(row.station_id),
        content_hash=row.content_hash,
        station_time=row.station_time,
        offline=row.offline,
    )


def load_traveler(conn: Connection, number: str) -> Traveler:
    trav = conn.execute(
        select(
            t.travelers,
            t.work_orders.c.number.label("wo_number"),
            t.work_orders.c.part_number,
            t.work_orders.c.part_name,
        )
        .join(t.work_orders, t.work_orders.c.id == t.travelers.c.work_order_id)
        .where(t.travelers.c.number == number)
    ).one_or_none()
    if trav is None:
        raise NotFound(f"Traveler {number}")
    names = NameLookup(conn)
    ops = conn.execute(
        select(t.operations)
        .where(t.operations.c.traveler_id == trav.id)
        .order_by(t.operations.c.id)
    ).all()
    ncr_list = _ncrs(conn, trav.id, names)
    steps = _steps(conn, trav.id, {o.id: o for o in ops}, names, ncr_list)
    hold = _active_hold(conn, trav.id, names)
    return Traveler(
        number=trav.number,
        work_order=trav.wo_number,
        part_number=trav.part_number,
        part_name=trav.part_name,
        serial=trav.serial,
        lot=trav.lot,
        status=rules.traveler_status(steps, hold is not None),
        operations=tuple(
            Operation(number=o.number, name=o.name, work_center=o.work_center) for o in ops
        ),
        steps=steps,
        hold=hold,
        ncrs=tuple(n for n, _ in ncr_list),
    )


def _steps(
    conn: Connection,
    traveler_id: int,
    ops: dict[int, Any],
    names: NameLookup,
    ncr_list: list[tuple[Ncr, int | None]],
) -> tuple[Step, ...]:
    step_rows = conn.execute(
        select(t.steps).where(t.steps.c.traveler_id == traveler_id).order_by(t.steps.c.seq)
    ).all()
    step_ids = [s.id for s in step_rows]
    item_rows = conn.execute(
        select(t.data_items)
        .where(t.data_items.c.step_id.in_(step_ids))
        .order_by(t.data_items.c.seq)
    ).all()
    latest, failed = _latest_values(conn, [i.id for i in item_rows], names)
    ncr_by_item = {item_id: ncr.number for ncr, item_id in ncr_list if item_id is not None}
    items_by_step: dict[int, list[DataItem]] = defaultdict(list)
    for i in item_rows:
        items_by_step[i.step_id].append(
            DataItem(
                id=i.id,
                label=i.label,
                kind=ItemKind(i.kind),
                unit=i.unit,
                nominal=i.nominal,
                lower=i.lower,
                upper=i.upper,
                required=i.required,
                latest=latest.get(i.id),
                failed_before=i.id in failed,
                ncr_number=ncr_by_item.get(i.id),
            )
        )
    sigs = signatures_of(conn, "step", step_ids, names)
    return tuple(
        Step(
            id=s.id,
            number=s.number,
            title=s.title,
            instructions=s.instructions,
            revision=s.revision,
            inspection=s.inspection,
            work_center=ops[s.operation_id].work_center,
            status=StepStatus(s.status),
            items=tuple(items_by_step[s.id]),
            signatures=tuple(sigs[s.id]),
        )
        for s in step_rows
    )


def _latest_values(
    conn: Connection, item_ids: list[int], names: NameLookup
) -> tuple[dict[int, RecordedValue], set[int]]:
    """The latest value of each item, and the items on which any value ever failed.

    Two aggregate queries rather than every value: an item may have thousands of entries.
    """
    rv = t.recorded_values.c
    newest = select(func.max(rv.id)).where(rv.item_id.in_(item_ids)).group_by(rv.item_id)
    rows = conn.execute(select(t.recorded_values).where(rv.id.in_(newest)))
    latest = {row.item_id: recorded_value(row, names) for row in rows}
    failed = set(
        conn.execute(
            select(rv.item_id).where(rv.item_id.in_(item_ids), rv.passed.is_(False)).distinct()
        ).scalars()
    )
    return latest, failed


def signatures_of(
    conn: Connection, subject: str, ids: list[int], names: NameLookup
) -> dict[int, list[SignatureManifest]]:
    found: dict[int, list[SignatureManifest]] = defaultdict(list)
    if not ids:
        return found  # most travelers have no NCR: no query for their signatures
    rows = conn.execute(
        select(t.signatures)
        .where(t.signatures.c.subject == subject, t.signatures.c.subject_id.in_(ids))
        .order_by(t.signatures.c.id)
    )
    for row in rows:
        found[row.subject_id].append(signature_manifest(row, names))
    return found


def _ncrs(conn: Connection, traveler_id: int, names: NameLookup) -> list[tuple[Ncr, int | None]]:
    rows = conn.execute(
        select(t.ncrs, t.steps.c.number.label("step_number"))
        .outerjoin(t.steps, t.steps.c.id == t.ncrs.c.step_id)
        .where(t.ncrs.c.traveler_id == traveler_id)
        .order_by(t.ncrs.c.id)
    ).all()
    signed = signatures_of(conn, "ncr", [r.id for r in rows], names)
    return [
        (
            Ncr(
                number=r.number,
                step_number=r.step_number,
                description=r.description,
                defect_code=r.defect_code,
                quantity=r.quantity,
                status="dispositioned" if r.disposition else "open",
                disposition=r.disposition,
                raised_by=names.user(r.raised_by),
                raised_at=r.raised_at,
                disposition_signature=next(iter(signed.get(r.id, [])), None),
            ),
            r.item_id,
        )
        for r in rows
    ]


def active_hold_row(conn: Connection, traveler_id: int) -> Any:
    return conn.execute(
        select(t.holds)
        .where(t.holds.c.traveler_id == traveler_id, t.holds.c.released_signature_id.is_(None))
        .order_by(t.holds.c.id)
        .limit(1)
    ).first()


def _active_hold(conn: Connection, traveler_id: int, names: NameLookup) -> Hold | None:
    row = active_hold_row(conn, traveler_id)
    if row is None:
        return None
    ncr_number = None
    if row.ncr_id is not None:
        ncr_number = conn.execute(
            select(t.ncrs.c.number).where(t.ncrs.c.id == row.ncr_id)
        ).scalar_one()
    return Hold(
        id=row.id,
        reason=row.reason,
        placed_by=names.user(row.placed_by),
        placed_at=row.placed_at,
        ncr_number=ncr_number,
    )


def queue(conn: Connection, work_center: str) -> list[TravelerSummary]:
    """Travelers whose current step (the first not complete) is worked at `work_center`.

    A handful of set-based queries for the whole plant, whatever its size: every station asks
    for its queue, and loading each traveler in full would grow with every traveler ever made.
    """
    st, op = t.steps.c, t.operations.c
    current = (
        select(st.traveler_id, func.min(st.seq).label("seq"))
        .where(st.status != StepStatus.COMPLETE.value)
        .group_by(st.traveler_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            t.travelers.c.id,
            t.travelers.c.number,
            t.travelers.c.serial,
            t.work_orders.c.number.label("wo"),
            t.work_orders.c.part_number,
            t.work_orders.c.part_name,
            st.number.label("step_number"),
            st.title,
        )
        .join(t.work_orders, t.work_orders.c.id == t.travelers.c.work_order_id)
        .join(current, current.c.traveler_id == t.travelers.c.id)
        .join(t.steps, (st.traveler_id == current.c.traveler_id) & (st.seq == current.c.seq))
        .join(t.operations, op.id == st.operation_id)
        .where(op.work_center == work_center)
        .order_by(t.travelers.c.number)
    ).all()
    ids = [r.id for r in rows]
    held = set(
        conn.execute(
            select(t.holds.c.traveler_id).where(
                t.holds.c.traveler_id.in_(ids), t.holds.c.released_signature_id.is_(None)
            )
        ).scalars()
    )
    started = set(
        conn.execute(
            select(st.traveler_id)
            .where(st.traveler_id.in_(ids), st.status != StepStatus.NOT_STARTED.value)
            .distinct()
        ).scalars()
    )
    return [
        TravelerSummary(
            number=r.number,
            work_order=r.wo,
            part_number=r.part_number,
            part_name=r.part_name,
            serial=r.serial,
            status=TravelerStatus.ON_HOLD
            if r.id in held
            else (TravelerStatus.IN_WORK if r.id in started else TravelerStatus.NOT_STARTED),
            current_step=f"{r.step_number} {r.title}",
            work_center=work_center,
        )
        for r in rows
    ]
