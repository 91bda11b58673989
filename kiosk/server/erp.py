"""The ERP side: work orders with routings come in as JSON, as-built records go out as JSON.

The import file's schema is the `PlantImport` model below (documented in README.md, example in
examples/work-orders.json). Each traveler of a work order gets its own copy of the routing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select

from kiosk.server import audit, views
from kiosk.server import schema as t
from kiosk.wire import (
    AsBuilt,
    AsBuiltConsumption,
    AsBuiltToolUse,
    AsBuiltValue,
    HoldRecord,
    ItemKind,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemSpec(_Strict):
    label: str
    kind: ItemKind
    unit: str | None = None
    nominal: float | None = None
    lower: float | None = None
    upper: float | None = None
    required: bool = True


class StepSpec(_Strict):
    number: str
    title: str
    instructions: str
    revision: str = "A"
    inspection: bool = False
    items: list[ItemSpec] = Field(default_factory=list)


class OperationSpec(_Strict):
    number: str
    name: str
    work_center: str
    steps: list[StepSpec]


class TravelerSpec(_Strict):
    number: str
    serial: str | None = None
    lot: str | None = None


class WorkOrderSpec(_Strict):
    number: str
    part_number: str
    part_name: str
    quantity: int = Field(ge=1)
    travelers: list[TravelerSpec]
    routing: list[OperationSpec]


class ToolSpec(_Strict):
    code: str
    description: str
    calibration_due: date


class LotSpec(_Strict):
    code: str
    part_number: str
    description: str


class PlantImport(_Strict):
    work_orders: list[WorkOrderSpec] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    material_lots: list[LotSpec] = Field(default_factory=list)


class ImportSummary(BaseModel):
    work_orders: int = 0
    travelers: int = 0
    steps: int = 0
    tools: int = 0
    material_lots: int = 0


def read_import(path: Path) -> PlantImport:
    return PlantImport.model_validate_json(path.read_bytes())


def load(conn: Connection, plant: PlantImport) -> ImportSummary:
    """Insert everything in `plant` inside the caller's transaction; refuse duplicates."""
    done = ImportSummary()
    for tool in plant.tools:
        conn.execute(insert(t.tools).values(**tool.model_dump()))
        done.tools += 1
    for lot in plant.material_lots:
        conn.execute(insert(t.material_lots).values(**lot.model_dump()))
        done.material_lots += 1
    for order in plant.work_orders:
        _load_work_order(conn, order, done)
    audit.append(
        conn, action="import", entity="erp", actor=None, station=None, new=done.model_dump()
    )
    return done


def _load_work_order(conn: Connection, order: WorkOrderSpec, done: ImportSummary) -> None:
    wo_id = conn.execute(
        insert(t.work_orders)
        .values(
            number=order.number,
            part_number=order.part_number,
            part_name=order.part_name,
            quantity=order.quantity,
        )
        .returning(t.work_orders.c.id)
    ).scalar_one()
    done.work_orders += 1
    for trav in order.travelers:
        trav_id = conn.execute(
            insert(t.travelers)
            .values(work_order_id=wo_id, **trav.model_dump())
            .returning(t.travelers.c.id)
        ).scalar_one()
        done.travelers += 1
        done.steps += _load_routing(conn, trav_id, order.routing)


def _load_routing(conn: Connection, trav_id: int, routing: list[OperationSpec]) -> int:
    seq = 0
    for op in routing:
        op_id = conn.execute(
            insert(t.operations)
            .values(traveler_id=trav_id, number=op.number, name=op.name, work_center=op.work_center)
            .returning(t.operations.c.id)
        ).scalar_one()
        for step in op.steps:
            seq += 1
            step_id = conn.execute(
                insert(t.steps)
                .values(
                    traveler_id=trav_id,
                    operation_id=op_id,
                    seq=seq,
                    status="not_started",
                    **step.model_dump(exclude={"items"}),
                )
                .returning(t.steps.c.id)
            ).scalar_one()
            if step.items:
                conn.execute(
                    insert(t.data_items),
                    [
                        {"step_id": step_id, "seq": n, **item.model_dump()}
                        for n, item in enumerate(step.items, 1)
                    ],
                )
    return seq


def as_built(conn: Connection, number: str) -> AsBuilt:
    """Everything that happened to one traveler: the evidence an auditor asks for."""
    trav = views.load_traveler(conn, number)
    tid = views.traveler_row(conn, number).id
    names = views.NameLookup(conn)
    labels = {i.id: (s.number, i.label) for s in trav.steps for i in s.items}
    values = conn.execute(
        select(t.recorded_values)
        .where(t.recorded_values.c.item_id.in_(list(labels)))
        .order_by(t.recorded_values.c.id)
    ).all()
    return AsBuilt(
        traveler=trav,
        values=tuple(
            AsBuiltValue(
                step=labels[v.item_id][0],
                item=labels[v.item_id][1],
                entry=views.recorded_value(v, names),
            )
            for v in values
        ),
        material=_material(conn, tid, labels, names),
        tools=_tools(conn, tid, labels, names),
        holds=_holds(conn, tid, names),
        generated_at=datetime.now(UTC),
    )


def _holds(conn: Connection, tid: int, names: views.NameLookup) -> tuple[HoldRecord, ...]:
    rows = conn.execute(
        select(t.holds, t.ncrs.c.number.label("ncr_number"))
        .outerjoin(t.ncrs, t.ncrs.c.id == t.holds.c.ncr_id)
        .where(t.holds.c.traveler_id == tid)
        .order_by(t.holds.c.id)
    ).all()
    released = views.signatures_of(conn, "hold", [r.id for r in rows], names)
    return tuple(
        HoldRecord(
            reason=r.reason,
            placed_by=names.user(r.placed_by),
            placed_at=r.placed_at,
            ncr_number=r.ncr_number,
            released=next(iter(released.get(r.id, [])), None),
        )
        for r in rows
    )


def _material(
    conn: Connection, tid: int, labels: dict[int, tuple[str, str]], names: views.NameLookup
) -> tuple[AsBuiltConsumption, ...]:
    rows = conn.execute(
        select(t.material_lots.c.code, t.material_lots.c.part_number, t.recorded_values)
        .join(t.recorded_values, t.recorded_values.c.id == t.consumption.c.value_id)
        .join(t.material_lots, t.material_lots.c.id == t.consumption.c.lot_id)
        .where(t.consumption.c.traveler_id == tid)
        .order_by(t.consumption.c.id)
    ).all()
    return tuple(
        AsBuiltConsumption(
            lot=r.code,
            part_number=r.part_number,
            step=labels[r.item_id][0],
            recorded_by=names.user(r.user_id),
            server_time=r.server_time,
        )
        for r in rows
    )


def _tools(
    conn: Connection, tid: int, labels: dict[int, tuple[str, str]], names: views.NameLookup
) -> tuple[AsBuiltToolUse, ...]:
    rows = conn.execute(
        select(t.tools.c.code, t.tools.c.calibration_due, t.recorded_values)
        .join(t.recorded_values, t.recorded_values.c.id == t.tool_uses.c.value_id)
        .join(t.tools, t.tools.c.id == t.tool_uses.c.tool_id)
        .where(t.tool_uses.c.traveler_id == tid)
        .order_by(t.tool_uses.c.id)
    ).all()
    return tuple(
        AsBuiltToolUse(
            tool=r.code,
            calibration_due=r.calibration_due,
            step=labels[r.item_id][0],
            recorded_by=names.user(r.user_id),
            server_time=r.server_time,
        )
        for r in rows
    )
