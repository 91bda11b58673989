"""Read side: builds wire models from the store in a handful of queries per traveler."""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from operator import attrgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    bindparam,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    update,
)

from kiosk import rules
from kiosk.server import (  # each reads people's names with NameLookup, below
    andon,
    corrections,
    documents,
    labour,
    redlines,
)
from kiosk.server import schema as t
from kiosk.wire import (
    Action,
    Asset,
    AssetKind,
    Certification,
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
    return Person(
        id=row.id,
        name=row.name,
        roles=tuple(Role(r) for r in row.roles.split(",")),
        work_centers=tuple(row.work_centers.split(",")),
    )


_CERTIFICATIONS = (
    select(t.certifications.c.operation, t.certifications.c.expires)
    .where(t.certifications.c.user_id == bindparam("user"))
    .order_by(t.certifications.c.operation)
)


def person_of(
    conn: Connection, row: RowMapping | Any, certs: Sequence[tuple[str, date]] | None = None
) -> Person:
    """The person with their certifications: what the rules of an action they take need.
    `certs`, (operation, expires) in operation order, where the caller read them with the row."""
    person = person_from_row(row)
    if certs is None:
        certs = [(c.operation, c.expires) for c in conn.execute(_CERTIFICATIONS, {"user": row.id})]
    if not certs:
        return person
    held = tuple(Certification(operation=op, expires=expires) for op, expires in certs)
    return person.model_copy(update={"certifications": held})


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


_HELD = t.holds.alias("held")
_HOLD_NCR = t.ncrs.alias("hold_ncr")
_FIRST_ACTIVE_HOLD = (
    select(func.min(t.holds.c.id))
    .where(t.holds.c.traveler_id == t.travelers.c.id, t.holds.c.released_signature_id.is_(None))
    .correlate(t.travelers)
    .scalar_subquery()
)
# A maintenance task's asset and task number (none on a production traveler).
_ASSET_COLUMNS = (
    t.assets.c.code.label("asset_code"),
    t.assets.c.kind.label("asset_kind"),
    t.assets.c.description.label("asset_description"),
    t.asset_tasks.c.task,
)
# Most travelers never have an NCR: then their NCRs need no query of their own.
_HAS_NCR = exists().where(t.ncrs.c.traveler_id == t.travelers.c.id).correlate(t.travelers)


def covering_deviations(part_number: Any, traveler_number: Any) -> Any:
    """The condition on `deviations` of those raised against the part number (naming no
    travelers) or naming the traveler, approved or not (`rules.deviation_covers` has the last
    word). Travelers are kept as ",TRV-1001,TRV-1002,", so a number is never a prefix match."""
    d = t.deviations.c
    listed = literal("%,") + traveler_number + literal(",%")
    return or_((d.part_number == part_number) & d.travelers.is_(None), d.travelers.like(listed))


# Most travelers are covered by no deviation: then they need no query of their own either.
_HAS_DEVIATION = (
    exists()
    .where(covering_deviations(t.work_orders.c.part_number, t.travelers.c.number))
    .correlate(t.travelers, t.work_orders)
)
# The traveler with its work order and its hold (if any) in one read.
_TRAVELER_ROWS = (
    select(
        t.travelers,
        t.work_orders.c.number.label("wo_number"),
        t.work_orders.c.part_number,
        t.work_orders.c.part_name,
        _HELD.c.id.label("hold_id"),
        _HELD.c.reason.label("hold_reason"),
        _HELD.c.placed_by.label("hold_placed_by"),
        _HELD.c.placed_at.label("hold_placed_at"),
        _HOLD_NCR.c.number.label("hold_ncr_number"),
        _HAS_NCR.label("has_ncr"),
        _HAS_DEVIATION.label("has_deviation"),
        *_ASSET_COLUMNS,
    )
    .join(t.work_orders, t.work_orders.c.id == t.travelers.c.work_order_id)
    .outerjoin(_HELD, _HELD.c.id == _FIRST_ACTIVE_HOLD)
    .outerjoin(_HOLD_NCR, _HOLD_NCR.c.id == _HELD.c.ncr_id)
    .outerjoin(t.asset_tasks, t.asset_tasks.c.traveler_id == t.travelers.c.id)
    .outerjoin(t.assets, t.assets.c.id == t.asset_tasks.c.asset_id)
)
_TRAVELER = _TRAVELER_ROWS.where(t.travelers.c.number == bindparam("number"))
# Serialises actions on one traveler across server processes (PostgreSQL row lock).
_TRAVELER_LOCKED = _TRAVELER.with_for_update(of=t.travelers)
# Several, locked in one order whoever asks, so two groups never wait on each other's.
_TRAVELERS_LOCKED = (
    _TRAVELER_ROWS.where(t.travelers.c.number.in_(bindparam("numbers", expanding=True)))
    .order_by(t.travelers.c.id)
    .with_for_update(of=t.travelers)
)


def traveler_row(conn: Connection, number: str, *, lock: bool = False) -> RowMapping:
    """The traveler's row, with its work order's number, part number and part name."""
    query = _TRAVELER_LOCKED if lock else _TRAVELER
    row = conn.execute(query, {"number": number}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"Traveler {number}")
    return row


def traveler_rows_locked(conn: Connection, numbers: list[str]) -> dict[str, RowMapping]:
    """The rows of the travelers of these numbers that exist, as `traveler_row` gives one."""
    rows = conn.execute(_TRAVELERS_LOCKED, {"numbers": numbers}).mappings()
    return {row["number"]: row for row in rows}


def for_action(conn: Connection, trav: RowMapping, action: Action) -> Traveler:
    """The traveler as an action's rules see it: the step it touches and the first earlier step
    not yet complete (what the predecessor rule names), its hold and NCRs; never every step, so
    an action costs the same on a traveler of 6 steps or 5,000. A void reads every step: no
    later step's signature may rely on the one voided (rare, and worth the read)."""
    if action.kind == "void_signature":
        return _build(conn, trav, None)
    return _build(conn, trav, _wanted_steps(action))


def for_values(
    conn: Connection, rows: dict[str, RowMapping], items: dict[str, int]
) -> dict[str, Traveler]:
    """For each traveler of `rows`, the view `for_action` gives a value on its item in `items`:
    the steps of all of them in one read (a group's values, kiosk.server.read_ahead). A traveler
    whose item is not one of its own is left out: its value reads for itself, and is refused."""
    currents = [r["current_step_id"] for r in rows.values() if r["current_step_id"] is not None]
    given = {"travelers": [r["id"] for r in rows.values()], "items": list(items.values())}
    read: dict[int, list[Any]] = defaultdict(list)
    for r in conn.execute(_STEPS_OF_ITEMS, {**given, "currents": currents}):
        read[r.traveler_id].append(r)
    found = {}
    for number, trav in rows.items():
        mine = read[trav["id"]]
        target = next((r for r in mine if r.i_id == items[number]), None)
        if target is None:
            continue
        wanted = {target.id, trav["current_step_id"]}
        mine = [r for r in mine if r.id in wanted and r.seq <= target.seq]
        steps = list({r.id: r for r in mine}.values())
        item_rows = _item_rows(mine)
        found[number] = _assemble(conn, trav, steps, item_rows, floor=False, documents_too=False)
    return found


@dataclass(frozen=True)
class Prepared:
    """A steps query built once, and what to run it with (besides the traveler's id)."""

    query: Any
    params: dict[str, Any]
    floor: bool = True
    """Whether the rules read who is clocked on and the open help or stop requests."""
    documents: bool = True
    """Whether the steps' documents are read (a signature's content names them)."""


# Kinds whose rules read neither who is clocked on nor the open help and stop requests (a stop
# shows as the traveler's hold, which is always read). Recording a value is most of what a plant
# sends; every other kind, and any new one, sees all of it.
WITHOUT_FLOOR = frozenset({"record_value"})


def _wanted_steps(action: Action) -> Prepared:
    item_id = getattr(action, "item_id", None)
    step_id = getattr(action, "step_id", None)
    floor = action.kind not in WITHOUT_FLOOR
    docs = action.kind not in WITHOUT_FLOOR  # recording a value signs nothing: no documents
    if item_id is not None:
        return Prepared(_STEPS_OF_ITEM, {"target": item_id}, floor, docs)
    if step_id is not None:
        return Prepared(_STEPS_OF_STEP, {"target": step_id}, floor, docs)
    return Prepared(_NO_STEPS, {}, floor, docs)


_TARGET = t.steps.alias("target")


def _action_steps(by_item: bool) -> Any:
    """The step an action touches and, if it comes before that one, the traveler's current step:
    its first not yet complete (kept in travelers.current_step_id), so the first earlier one
    not complete, which the predecessor rule names. Both are found by their ids: the read costs
    the same on a traveler of 6 steps or 5,000, where a search for the first open one scanned
    every step before the target (PostgreSQL filtered all 200 of TRV-2000's on each value)."""
    st = t.steps.c
    target: Any = bindparam("target")
    if by_item:
        target = (
            select(t.data_items.c.step_id)
            .where(t.data_items.c.id == bindparam("target"))
            .scalar_subquery()
        )
    target_seq = select(_TARGET.c.seq).where(_TARGET.c.id == target).scalar_subquery()
    return st.id.in_([target, bindparam("current")]) & (st.seq <= target_seq)


_V = t.recorded_values.c
_PRIOR = t.recorded_values.alias("prior")  # the value a correction corrected
# Each item with its latest value, by the id the item keeps: one indexed read of the steps' items,
# however many values an item has collected.
_LATEST_COLUMNS = (
    _V.value.label("v_value"),
    _V.passed.label("v_passed"),
    _V.user_id.label("v_user_id"),
    _V.server_time.label("v_server_time"),
    _V.station_time.label("v_station_time"),
    _V.station_id.label("v_station_id"),
    _V.offline.label("v_offline"),
    _V.reason.label("v_reason"),
    _PRIOR.c.value.label("v_corrects"),
    _V.deviation.label("v_deviation"),
)


def _with_latest(query: Any) -> Any:
    """`query` (which reads data_items) joined to each item's latest value and what it corrected."""
    return query.outerjoin(t.recorded_values, _V.id == t.data_items.c.latest_value_id).outerjoin(
        _PRIOR, _PRIOR.c.id == _V.corrects_id
    )


_ITEMS = (
    _with_latest(select(t.data_items, *_LATEST_COLUMNS))
    .where(t.data_items.c.step_id.in_(bindparam("steps", expanding=True)))
    .order_by(t.data_items.c.seq)
)


# Whether a step has signatures, and open redlines: most steps in work have neither, and a
# condition in the steps' read costs far less than a read of its own.
_SIGNED = (
    exists()
    .where(t.signatures.c.subject == "step", t.signatures.c.subject_id == t.steps.c.id)
    .correlate(t.steps)
)
_REDLINED = exists().where(redlines.OPEN_OF_STEP).correlate(t.steps)


def _steps_select() -> Any:
    op = t.operations.c
    return select(
        t.steps,
        op.number.label("op_number"),
        op.name.label("op_name"),
        op.work_center,
        _SIGNED.label("signed"),
        _REDLINED.label("redlined"),
    ).join(t.operations, op.id == t.steps.c.operation_id)


def _steps_query(where: Any, travelers: Any = None) -> Any:
    """An action's steps each with its items and their latest values, `i_` before each item
    column: one read where there were two (each read is a round trip, 0.2 ms on PostgreSQL).
    `travelers`: whose steps (default: the one traveler bound as `traveler`)."""
    if travelers is None:
        travelers = t.steps.c.traveler_id == bindparam("traveler")
    items = (c.label(f"i_{c.name}") for c in (*t.data_items.c, *_LATEST_COLUMNS))
    with_items = _steps_select().add_columns(*items)
    return (
        _with_latest(with_items.outerjoin(t.data_items, t.data_items.c.step_id == t.steps.c.id))
        .where(travelers, where)
        .order_by(t.steps.c.seq, t.data_items.c.seq)
    )


# Built once: building and keying these per action cost more than running them.
_STEPS_OF_ITEM = _steps_query(_action_steps(by_item=True))
_STEPS_OF_STEP = _steps_query(_action_steps(by_item=False))
_NO_STEPS = _steps_query(false())
# The steps of several travelers' items and their current steps, each traveler's sorted out
# in Python (for_values): one condition that said which of them each wants took longer to run.
_STEPS_OF_ITEMS = _steps_query(
    t.steps.c.id.in_(
        select(t.data_items.c.step_id).where(
            t.data_items.c.id.in_(bindparam("items", expanding=True))
        )
    )
    | t.steps.c.id.in_(bindparam("currents", expanding=True)),
    t.steps.c.traveler_id.in_(bindparam("travelers", expanding=True)),
)


def recorded_value(row: Any, names: NameLookup, corrects: str | None = None) -> RecordedValue:
    """`corrects`: the value this one corrected, where it is a correction (row.reason)."""
    return RecordedValue(
        id=row.id,
        value=row.value,
        passed=row.passed,
        recorded_by=names.user(row.user_id),
        server_time=row.server_time,
        station_time=row.station_time,
        station=names.station(row.station_id),
        offline=row.offline,
        corrects=corrects,
        reason=row.reason,
        deviation=row.deviation,
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
        void_reason=row.void_reason,
    )


def load_traveler(
    conn: Connection,
    number: str,
    *,
    operation: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> Traveler:
    """The traveler as the station shows it: every step, or those of one operation, or the steps
    numbered `first` to `last` (inclusive), for a routing too long to fetch whole."""
    trav = traveler_row(conn, number)
    where: Any = None
    st = t.steps.c
    if operation is not None:
        where = st.operation_id.in_(
            select(t.operations.c.id).where(
                t.operations.c.traveler_id == trav["id"], t.operations.c.number == operation
            )
        )
    if first is not None or last is not None:
        bounds = [_seq_of(conn, trav["id"], n) for n in (first, last)]
        low, high = bounds[0] or 0, bounds[1] or 2**31
        where = st.seq.between(low, high) if where is None else where & st.seq.between(low, high)
    return _build(conn, trav, where)


def load_traveler_step(conn: Connection, traveler_id: int, step_id: int) -> Step:
    """One step of a traveler, as the station shows it."""
    number = conn.execute(
        select(t.travelers.c.number).where(t.travelers.c.id == traveler_id)
    ).scalar_one()
    trav = _build(conn, traveler_row(conn, number), t.steps.c.id == step_id)
    return trav.steps[0]


def _seq_of(conn: Connection, traveler_id: int, number: str | None) -> int | None:
    if number is None:
        return None
    seq = conn.execute(
        select(t.steps.c.seq).where(
            t.steps.c.traveler_id == traveler_id, t.steps.c.number == number
        )
    ).scalar()
    if seq is None:
        raise NotFound(f"Step {number}")
    return int(seq)


def _build(conn: Connection, trav: RowMapping, steps: Any) -> Traveler:
    """The traveler from its row; only the steps matching `steps` (a condition), if given."""
    step_rows, item_rows = _step_rows(conn, trav, steps)
    floor = not isinstance(steps, Prepared) or steps.floor
    docs = not isinstance(steps, Prepared) or steps.documents
    return _assemble(conn, trav, step_rows, item_rows, floor=floor, documents_too=docs)


def _assemble(
    conn: Connection,
    trav: RowMapping,
    step_rows: list[Any],
    item_rows: list[Any] | None,
    *,
    floor: bool,
    documents_too: bool,
) -> Traveler:
    """The traveler from its row and its steps' rows (`_steps`)."""
    names = NameLookup(conn)
    ncr_list = _ncrs(conn, trav["id"], names) if trav["has_ncr"] else []
    steps_ = _steps(conn, step_rows, names, ncr_list, item_rows, documents_too=documents_too)
    hold = andon.marked(conn, _active_hold(trav, names))
    ops = {r.operation_id: r for r in step_rows}  # every operation has steps
    return Traveler(
        number=trav["number"],
        work_order=trav["wo_number"],
        part_number=trav["part_number"],
        part_name=trav["part_name"],
        serial=trav["serial"],
        lot=trav["lot"],
        status=rules.traveler_status(
            steps_, hold is not None, rules.ended_by(n for n, _ in ncr_list)
        ),
        operations=tuple(
            Operation(number=o.op_number, name=o.op_name, work_center=o.work_center)
            for _, o in sorted(ops.items())
        ),
        steps=steps_,
        hold=hold,
        ncrs=tuple(n for n, _ in ncr_list),
        labour=labour.open_entries(conn, trav["id"], names) if floor else (),
        andon=andon.open_requests(conn, names, trav["id"]) if floor else (),
        asset=_asset(trav),
        task=trav["task"],
        deviations=_deviations_of(conn, trav),
    )


def _asset(trav: RowMapping) -> Asset | None:
    if trav["asset_code"] is None:
        return None
    return Asset(
        id=trav["asset_code"],
        kind=AssetKind(trav["asset_kind"]),
        description=trav["asset_description"],
    )


def _deviations_of(conn: Connection, trav: RowMapping) -> tuple[Any, ...]:
    if not trav["has_deviation"]:
        return ()
    from kiosk.server import deviations  # it reads through this module

    return deviations.for_traveler(conn, trav["number"], trav["part_number"])


def _step_rows(
    conn: Connection, trav: RowMapping, where: Any = None
) -> tuple[list[Any], list[Any] | None]:
    """The steps' rows; and for an action's (Prepared) read, their item rows read with them."""
    traveler_id = trav["id"]
    if isinstance(where, Prepared):
        given = {"traveler": traveler_id, "current": trav["current_step_id"], **where.params}
        rows = conn.execute(where.query, given).all()
        steps = list({r.id: r for r in rows}.values())  # one row per item: each step once
        return steps, _item_rows(rows)
    query = _steps_select().where(t.steps.c.traveler_id == traveler_id)
    if where is not None:
        query = query.where(where)
    return list(conn.execute(query.order_by(t.steps.c.seq)).all()), None


def _steps(
    conn: Connection,
    step_rows: list[Any],
    names: NameLookup,
    ncr_list: list[tuple[Ncr, int | None]],
    item_rows: list[Any] | None = None,
    *,
    documents_too: bool = True,
) -> tuple[Step, ...]:
    """The steps of `step_rows`, with their items: `item_rows` where the steps' read brought
    them, else read here."""
    step_ids = [s.id for s in step_rows]
    if item_rows is None:
        item_rows = list(conn.execute(_ITEMS, {"steps": step_ids})) if step_ids else []
    latest = {i.id: _latest(i, names) for i in item_rows if i.latest_value_id is not None}
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
                expected=i.expected,
                latest=latest.get(i.id),
                failed_before=i.failed,
                ncr_number=ncr_by_item.get(i.id),
            )
        )
    sigs = signatures_of(conn, "step", [s.id for s in step_rows if s.signed], names)
    red = redlines.open_redlines(conn, [s.id for s in step_rows if s.redlined], names)
    voided: dict[int, list[SignatureManifest]] = {}
    for step_id in [i for i, found in sigs.items() if any(s.void_reason for s in found)]:
        build = partial(signature_manifest, names=names)
        sigs[step_id], voided[step_id] = corrections.with_voids(conn, sigs[step_id], build)
    docs = documents.of_steps(conn, (s.documents for s in step_rows)) if documents_too else {}
    return tuple(
        Step(
            id=s.id,
            number=s.number,
            title=s.title,
            instructions=s.instructions,
            revision=s.revision,
            inspection=s.inspection,
            work_center=s.work_center,
            status=StepStatus(s.status),
            items=tuple(items_by_step[s.id]),
            signatures=tuple(sigs[s.id]),
            certification=s.certification,
            redlines=red.get(s.id, ()),
            voided=tuple(voided.get(s.id, ())),
            documents=tuple(docs[ref] for ref in documents.refs_of(s.documents) if ref in docs),
        )
        for s in step_rows
    )


def _latest(item: Any, names: NameLookup) -> RecordedValue:
    # The item's row carries its latest value's columns, each named with a `v_` in front.
    latest = _ValueRow(item.latest_value_id, *_LATEST_OF(item))
    return recorded_value(latest, names, item.v_corrects)


# An item's row read with its steps (`_steps_query`) names each column with `i_` in front; it is
# read as an item row of `_ITEMS` reads, by the columns' own names. Both carry the item's latest
# value, each of its columns with `v_` in front; that is read as a value's row is. Taken apart
# with one `attrgetter` each (C): an object that looked each column up by its prefixed name,
# attribute by attribute, was a twentieth of the group committer's time.
_ITEM_COLUMNS = tuple(c.name for c in (*t.data_items.c, *_LATEST_COLUMNS))
_ItemRow = namedtuple("_ItemRow", _ITEM_COLUMNS)  # type: ignore[misc]  # names known at import
_OF_STEPS_READ = attrgetter(*(f"i_{name}" for name in _ITEM_COLUMNS))
_ValueRow = namedtuple(  # what `recorded_value` reads of a value's row
    "_ValueRow",
    "id value passed user_id server_time station_time station_id offline reason deviation",
)
_LATEST_OF = attrgetter(*(f"v_{name}" for name in _ValueRow._fields[1:]))


def _item_rows(rows: Sequence[Any]) -> list[Any]:
    """The items of a steps' read (`_steps_query`), as `_ITEMS` reads them."""
    return [_ItemRow._make(_OF_STEPS_READ(r)) for r in rows if r.i_id is not None]


def _latest_values(
    conn: Connection, value_ids: list[int], names: NameLookup
) -> dict[int, RecordedValue]:
    """The latest value of each item, by the ids the items keep: one indexed read, however many
    values an item has collected."""
    if not value_ids:
        return {}
    rows = conn.execute(select(t.recorded_values).where(t.recorded_values.c.id.in_(value_ids)))
    return {row.item_id: recorded_value(row, names) for row in rows}


# The reads of every action, built once: building and keying a statement costs more than
# running it on an indexed lookup.
_SIGNATURES = (
    select(t.signatures)
    .where(
        t.signatures.c.subject == bindparam("subject"),
        t.signatures.c.subject_id.in_(bindparam("ids", expanding=True)),
    )
    .order_by(t.signatures.c.id)
)
_NCRS = (
    select(t.ncrs, t.steps.c.number.label("step_number"))
    .outerjoin(t.steps, t.steps.c.id == t.ncrs.c.step_id)
    .where(t.ncrs.c.traveler_id == bindparam("traveler"))
    .order_by(t.ncrs.c.id)
)
_ACTIVE_HOLD = (
    select(t.holds)
    .where(
        t.holds.c.traveler_id == bindparam("traveler"), t.holds.c.released_signature_id.is_(None)
    )
    .order_by(t.holds.c.id)
    .limit(1)
)


def signatures_of(
    conn: Connection, subject: str, ids: list[int], names: NameLookup
) -> dict[int, list[SignatureManifest]]:
    found: dict[int, list[SignatureManifest]] = defaultdict(list)
    if not ids:
        return found  # most travelers have no NCR: no query for their signatures
    rows = conn.execute(_SIGNATURES, {"subject": subject, "ids": ids})
    for row in rows:
        found[row.subject_id].append(signature_manifest(row, names))
    return found


def _ncrs(conn: Connection, traveler_id: int, names: NameLookup) -> list[tuple[Ncr, int | None]]:
    rows = conn.execute(_NCRS, {"traveler": traveler_id}).all()
    signed = {
        s.id: s for found in signatures_of(conn, "ncr", [r.id for r in rows], names).values()
        for s in found
    }  # fmt: skip
    ncr_list = []
    for r in rows:
        ncr = Ncr(
            number=r.number,
            step_number=r.step_number,
            description=r.description,
            defect_code=r.defect_code,
            quantity=r.quantity,
            status="open",
            disposition=r.disposition,
            raised_by=names.user(r.raised_by),
            raised_at=r.raised_at,
            disposition_signature=signed.get(r.disposition_signature_id),
            rationale=r.rationale or "",
            instructions=r.instructions or "",
            approval_role=r.approval_role,
            approval_signature=signed.get(r.approval_signature_id),
        )
        ncr_list.append((ncr.model_copy(update={"status": rules.ncr_status(ncr)}), r.item_id))
    return ncr_list


def active_hold_row(conn: Connection, traveler_id: int) -> Any:
    return conn.execute(_ACTIVE_HOLD, {"traveler": traveler_id}).first()


def _active_hold(trav: RowMapping, names: NameLookup) -> Hold | None:
    """The hold read with the traveler's row (traveler_row)."""
    if trav["hold_id"] is None:
        return None
    return Hold(
        id=trav["hold_id"],
        reason=trav["hold_reason"],
        placed_by=names.user(trav["hold_placed_by"]),
        placed_at=trav["hold_placed_at"],
        ncr_number=trav["hold_ncr_number"],
    )


QUEUE_PAGE = 500
"""Travelers in one answer of the queue unless the station asks for fewer (at most QUEUE_MAX)."""
QUEUE_MAX = 2000


def keep_current_step(conn: Connection, traveler_id: int) -> None:
    """Note the traveler's first step not yet complete: where its work stands."""
    st = t.steps.c
    first_open = (
        select(st.id)
        .where(st.traveler_id == traveler_id, st.status != StepStatus.COMPLETE.value)
        .order_by(st.seq)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(
        update(t.travelers)
        .where(t.travelers.c.id == traveler_id)
        .values(current_step_id=first_open)
    )


def queue(
    conn: Connection,
    work_center: str,
    *,
    after: str | None = None,
    search: str | None = None,
    limit: int = QUEUE_PAGE,
) -> list[TravelerSummary]:
    """Travelers whose current step (the first not complete) is worked at `work_center`, in
    traveler number order: a page of `limit` after the number `after`, optionally only those
    whose number, part number or serial starts with `search`.

    Each traveler keeps its current step, so a page costs the same for a plant of 100 travelers
    or 100,000: the travelers are walked in number order, never their steps.
    """
    st, op, tr, wo = t.steps.c, t.operations.c, t.travelers.c, t.work_orders.c
    query = (
        select(
            tr.id,
            tr.number,
            tr.serial,
            wo.number.label("wo"),
            wo.part_number,
            wo.part_name,
            st.number.label("step_number"),
            st.title,
            st.status.label("step_status"),
            st.seq,
            t.assets.c.code.label("asset"),
        )
        .join(t.work_orders, wo.id == tr.work_order_id)
        .join(t.steps, st.id == tr.current_step_id)
        .join(t.operations, op.id == st.operation_id)
        .outerjoin(t.asset_tasks, t.asset_tasks.c.traveler_id == tr.id)
        .outerjoin(t.assets, t.assets.c.id == t.asset_tasks.c.asset_id)
        .where(op.work_center == work_center)
    )
    if after is not None:
        query = query.where(tr.number > after)
    if search:
        prefix = search.strip().upper().replace("%", "").replace("_", "") + "%"
        query = query.where(
            or_(
                tr.number.like(prefix),
                wo.part_number.like(prefix),
                tr.serial.like(prefix),
                t.assets.c.code.like(prefix),  # a scan of the asset's label finds its tasks
            )
        )
    rows = conn.execute(query.order_by(tr.number).limit(min(limit, QUEUE_MAX))).all()
    ids = [r.id for r in rows]
    held = set(
        conn.execute(
            select(t.holds.c.traveler_id).where(
                t.holds.c.traveler_id.in_(ids), t.holds.c.released_signature_id.is_(None)
            )
        ).scalars()
    )
    ended = _ended(conn, ids)
    # Begun: the current step is under way, or a step before it is complete (steps count from 1).
    started = {r.id for r in rows if r.step_status != StepStatus.NOT_STARTED.value or r.seq > 1}
    return [
        TravelerSummary(
            number=r.number,
            work_order=r.wo,
            part_number=r.part_number,
            part_name=r.part_name,
            serial=r.serial,
            status=ended.get(r.id, _queued_status(r.id in held, r.id in started)),
            current_step=f"{r.step_number} {r.title}",
            work_center=work_center,
            asset=r.asset,
        )
        for r in rows
    ]


def _queued_status(held: bool, started: bool) -> TravelerStatus:
    if held:
        return TravelerStatus.ON_HOLD
    return TravelerStatus.IN_WORK if started else TravelerStatus.NOT_STARTED


def _ended(conn: Connection, traveler_ids: list[int]) -> dict[int, TravelerStatus]:
    """Travelers of `traveler_ids` that an NCR's scrap or return-to-vendor ended."""
    if not traveler_ids:
        return {}
    ending = {d.value: status for d, status in rules.ENDING.items()}
    rows = conn.execute(
        select(t.ncrs.c.traveler_id, t.ncrs.c.disposition).where(
            t.ncrs.c.traveler_id.in_(traveler_ids), t.ncrs.c.disposition.in_(list(ending))
        )
    )
    return {r.traveler_id: ending[r.disposition] for r in rows}
