"""The ERP side: work orders with routings come in as JSON, as-built records go out as JSON.

The import file's schema is the `PlantImport` model below (documented in README.md, example in
examples/work-orders.json). Each traveler of a work order gets its own copy of the routing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, insert, select

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import andon, audit, documents, labour, quality, records, redlines, views
from kiosk.server import schema as t
from kiosk.server.quality import QualitySettings
from kiosk.wire import (
    AsBuilt,
    AsBuiltConsumption,
    AsBuiltToolUse,
    AsBuiltValue,
    Asset,
    AssetHistory,
    AssetKind,
    DocumentRef,
    EvidenceFile,
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
    expected: str | None = Field(default=None, min_length=1, max_length=200)
    """A value or pattern the value must match (`{serial}` is the traveler's serial); on a
    material item, the part number its lots must be of."""


class StepSpec(_Strict):
    number: str
    title: str
    instructions: str
    revision: str = "A"
    inspection: bool = False
    items: list[ItemSpec] = Field(default_factory=list)
    certification: str | None = Field(default=None, min_length=1, max_length=60)
    """The certification (operation type) whoever starts or signs the step must hold."""
    documents: list[DocumentRef] = Field(default_factory=list, max_length=20)
    """Drawings and specifications the step shows, by number and revision: each must be in
    the plant at that revision (`kiosk document add`), or the import is refused whole."""


class OperationSpec(_Strict):
    number: str
    name: str
    work_center: str
    steps: list[StepSpec]


class TravelerSpec(_Strict):
    number: str
    serial: str | None = None
    lot: str | None = None
    task: str | None = Field(default=None, max_length=60)
    """A maintenance task's task number (task card): only on a work order with an asset."""


ASSET_ID = re.compile(r"[A-Z0-9][A-Z0-9._/-]{0,59}")


class AssetSpec(_Strict):
    """The asset a maintenance work order is done on; imported once, named again by its id."""

    id: str = Field(pattern=r"^ *[A-Za-z0-9][A-Za-z0-9._/-]{0,59} *$")
    """A tail number or equipment id, kept upper case (as a label scan gives it)."""
    kind: AssetKind
    description: str = Field(min_length=1, max_length=200)

    @field_validator("id", mode="before")
    @classmethod
    def _label_text(cls, value: Any) -> Any:
        """Upper case, as a label scan gives it; a tail number or equipment id, nothing else."""
        if not isinstance(value, str):
            return value
        code = value.strip(" ").upper()
        if not ASSET_ID.fullmatch(code):
            raise ValueError(
                f"asset id {value!r} is not a tail number or equipment id (such as N512KS or "
                "PRESS-07): 1 to 60 letters, digits, '-', '.', '/', starting with a letter or digit"
            )
        return code


class WorkOrderSpec(_Strict):
    number: str
    part_number: str
    part_name: str
    quantity: int = Field(ge=1)
    travelers: list[TravelerSpec]
    routing: list[OperationSpec]
    asset: AssetSpec | None = None
    """Maintenance: the asset its travelers (tasks, each with a task number) are done on."""


class ToolSpec(_Strict):
    code: str
    description: str
    calibration_due: date


class LotSpec(_Strict):
    code: str
    part_number: str
    description: str


class CertificationSpec(_Strict):
    """A person's certification, by their printed name: granted, or renewed with a new date."""

    person: str
    operation: str = Field(min_length=1, max_length=60)
    expires: date


class PlantImport(_Strict):
    work_orders: list[WorkOrderSpec] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    material_lots: list[LotSpec] = Field(default_factory=list)
    certifications: list[CertificationSpec] = Field(default_factory=list)
    quality: QualitySettings | None = None
    """Plant quality settings (who gives a disposition's second approval)."""


class ImportSummary(BaseModel):
    work_orders: int = 0
    travelers: int = 0
    steps: int = 0
    tools: int = 0
    material_lots: int = 0
    certifications: int = 0
    assets: int = 0


def read_import(path: Path) -> PlantImport:
    return PlantImport.model_validate_json(path.read_bytes())


def load(conn: Connection, plant: PlantImport) -> ImportSummary:
    """Insert everything in `plant` inside the caller's transaction; refuse duplicates."""
    _refuse_mixed_tasks(plant)
    done = ImportSummary()
    for tool in plant.tools:
        conn.execute(insert(t.tools).values(**tool.model_dump()))
        done.tools += 1
    for lot in plant.material_lots:
        conn.execute(insert(t.material_lots).values(**lot.model_dump()))
        done.material_lots += 1
    for order in plant.work_orders:
        _load_work_order(conn, order, done)
    for cert in plant.certifications:
        quality.certify(conn, _person_id(conn, cert.person), cert.operation, cert.expires, None)
        done.certifications += 1
    if plant.quality is not None:
        quality.save_settings(conn, plant.quality)
    audit.append(
        conn, action="import", entity="erp", actor=None, station=None, new=done.model_dump()
    )
    return done


class UnknownPerson(Refusal):
    """A certification names a person the plant does not have (or has twice)."""

    def __init__(self, detail: str) -> None:
        super().__init__("person_unknown", detail, 422)


def _person_id(conn: Connection, name: str) -> int:
    found = conn.execute(
        select(t.users.c.id).where(t.users.c.name == name, t.users.c.active.is_(True))
    ).all()
    if len(found) != 1:
        raise UnknownPerson(f"certification for {name!r}: no one active person has that name")
    return int(found[0].id)


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
            .values(work_order_id=wo_id, **trav.model_dump(exclude={"task"}))
            .returning(t.travelers.c.id)
        ).scalar_one()
        done.travelers += 1
        if order.asset is not None:
            _load_task(conn, order.asset, trav_id, trav.task or "", done)
        done.steps += _load_routing(conn, trav_id, order.routing)
        views.keep_current_step(conn, trav_id)


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
                    **step.model_dump(exclude={"items", "documents"}),
                    documents=_documents(conn, step),
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


def _documents(conn: Connection, step: StepSpec) -> str | None:
    try:
        documents.ensure_known(conn, step.documents)
    except Refusal as refused:
        raise UnknownDocument(f"step {step.number}: {refused.detail}") from None
    return documents.refs_json(step.documents)


class UnknownDocument(Refusal):
    """A step names a document, or a revision of one, that the plant does not have."""

    def __init__(self, detail: str) -> None:
        super().__init__("document_unknown", detail, 422)


def as_built(conn: Connection, number: str) -> AsBuilt:
    """Everything that happened to one traveler: the evidence an auditor asks for."""
    trav = views.load_traveler(conn, number)
    tid = views.traveler_row(conn, number)["id"]
    names = views.NameLookup(conn)
    now = datetime.now(UTC)
    labels = {i.id: (s.number, i.label) for s in trav.steps for i in s.items}
    evidence = {i.id for s in trav.steps for i in s.items if i.kind in rules.EVIDENCE_TYPES}
    values = conn.execute(
        select(t.recorded_values)
        .where(t.recorded_values.c.item_id.in_(list(labels)))
        .order_by(t.recorded_values.c.id)
    ).all()
    shown = {v.id: v.value for v in values}  # what each correction corrected
    relied = {v.deviation for v in values}
    return AsBuilt(
        traveler=trav,
        values=tuple(
            AsBuiltValue(
                step=labels[v.item_id][0],
                item=labels[v.item_id][1],
                entry=views.recorded_value(v, names, shown.get(v.corrects_id)),
                file=EvidenceFile.of_value(v.value) if v.item_id in evidence else None,
            )
            for v in values
        ),
        deviations=tuple(d for d in trav.deviations if d.number in relied),
        material=_material(conn, tid, labels, names),
        tools=_tools(conn, tid, labels, names),
        holds=_holds(conn, tid, names),
        labour=tuple(labour.intervals(conn, now, traveler_id=tid)),
        andon=andon.all_requests(conn, tid),
        revisions=redlines.all_revisions(conn, tid),
        generated_at=now,
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


# --- maintenance on assets -------------------------------------------------------------------------


class AssetRefused(Refusal):
    """A maintenance work order mixes tasks and units, or names an asset the plant has as
    another kind."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.rule, refusal.detail, refusal.status)


def _refuse_mixed_tasks(plant: PlantImport) -> None:
    """A traveler is a unit or an asset's task, never both: refused before anything is written."""
    for order in plant.work_orders:
        for trav in order.travelers:
            refused = rules.maintenance_task_refused(
                order.asset is not None, trav.serial, trav.lot, trav.task
            )
            if refused is not None:
                where = f"work order {order.number} traveler {trav.number}"
                raise AssetRefused(Refusal(refused.rule, f"{where}: {refused.detail}", 422))


def _load_task(
    conn: Connection, spec: AssetSpec, traveler_id: int, task: str, done: ImportSummary
) -> None:
    """The traveler is task `task` on the asset (created with its first task); both in the chain."""
    asset_id = _asset_id(conn, spec, done)
    values = {"asset_id": asset_id, "traveler_id": traveler_id, "task": task.strip()}
    row_id = conn.execute(
        insert(t.asset_tasks).values(**values).returning(t.asset_tasks.c.id)
    ).scalar_one()
    audit.append(
        conn, action="asset_task", entity=f"asset_task:{row_id}", actor=None, station=None,
        new=records.state(values),
    )  # fmt: skip


def _asset_id(conn: Connection, spec: AssetSpec, done: ImportSummary) -> int:
    found = conn.execute(select(t.assets).where(t.assets.c.code == spec.id)).one_or_none()
    if found is not None:
        refused = rules.asset_kind_refused(spec.id, found.kind, spec.kind.value)
        if refused is not None:
            raise AssetRefused(refused)
        return int(found.id)
    values = {"code": spec.id, "kind": spec.kind.value, "description": spec.description}
    row_id = conn.execute(insert(t.assets).values(**values).returning(t.assets.c.id)).scalar_one()
    audit.append(
        conn, action="asset_create", entity=f"asset:{row_id}", actor=None, station=None,
        new=records.state(values),
    )  # fmt: skip
    done.assets += 1
    return int(row_id)


class UnknownAsset(Refusal):
    def __init__(self, code: str) -> None:
        super().__init__(
            "not_found",
            f"Asset {code} is not in the plant: no maintenance task was imported for it.",
            404,
        )


def asset_history(conn: Connection, code: str) -> AssetHistory:
    """The asset's as-maintained record: each of its tasks' as-built, in the order imported."""
    code = code.strip().upper()
    row = conn.execute(select(t.assets).where(t.assets.c.code == code)).one_or_none()
    if row is None:
        raise UnknownAsset(code or "''")
    numbers = conn.execute(
        select(t.travelers.c.number)
        .join(t.asset_tasks, t.asset_tasks.c.traveler_id == t.travelers.c.id)
        .where(t.asset_tasks.c.asset_id == row.id)
        .order_by(t.asset_tasks.c.id)
    ).scalars()
    return AssetHistory(
        asset=Asset(id=row.code, kind=AssetKind(row.kind), description=row.description),
        tasks=tuple(as_built(conn, number) for number in numbers),
        generated_at=datetime.now(UTC),
    )
