"""Deviations on the server: raising one (the API's POST /api/v1/deviations, `kiosk deviation
raise`), reading those that cover a traveler, the plant's list, and taking a unit when a traveler
first relies on one. The rules (scope, what it allows, in effect or not, who approves) are in
kiosk.rules; the approval is a signed station action (kiosk.server.domain.approve_deviation).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, quality, records, views
from kiosk.server import schema as t
from kiosk.wire import Deviation, ItemKind, RaiseDeviation, Role, Traveler

_D = t.deviations.c


def _listed(text: str | None) -> tuple[str, ...]:
    return tuple(x for x in (text or "").split(",") if x)


def _stored(names: tuple[str, ...]) -> str | None:
    # ",TRV-1001,TRV-1002,": a traveler is found with LIKE '%,TRV-1001,%', never a prefix of another
    return f",{','.join(names)}," if names else None


# --- raising --------------------------------------------------------------------------------------


def raise_deviation(
    conn: Connection, body: RaiseDeviation, raised_by: str, now: datetime
) -> Deviation:
    """Check `body` against the plant, then write it (numbered DEV-0001, …) with its audit
    record; a refusal leaves nothing behind."""
    body = _normalised(body)
    _ensure_complete(body, now.date())
    items = _covered_items(conn, body)
    _ensure_fits(body, items)
    role = quality.settings(conn).deviation_second_approver
    row: dict[str, Any] = {
        "part_number": body.part_number,
        "travelers": _stored(body.travelers),
        "steps": _stored(body.steps),
        "item": body.item,
        "lower": body.lower,
        "upper": body.upper,
        "substitute": body.substitute,
        "reason": body.reason.strip(),
        "units": body.units,
        "until": body.until,
        "raised_by": raised_by,
        "raised_at": now,
        "approval_role": None if role is None else role.value,
    }
    # The number comes from the row id, which the database hands out without races.
    dev_id = conn.execute(
        insert(t.deviations)
        .values(number=f"pending-{uuid.uuid4().hex[:12]}", **row)
        .returning(_D.id)
    ).scalar_one()
    number = f"DEV-{dev_id:04d}"
    conn.execute(update(t.deviations).where(_D.id == dev_id).values(number=number))
    audit.append(
        conn, action="raise_deviation", entity=f"deviation:{dev_id}", actor=raised_by,
        station=None, new=records.state({**row, "number": number}), now=now,
    )  # fmt: skip
    return _one(conn, number)


def _normalised(body: RaiseDeviation) -> RaiseDeviation:
    upper = {
        "part_number": body.part_number.strip().upper() if body.part_number else None,
        "travelers": tuple(sorted({n.strip().upper() for n in body.travelers if n.strip()})),
        "steps": tuple(sorted({n.strip() for n in body.steps if n.strip()})),
        "item": body.item.strip(),
        "substitute": body.substitute.strip().upper() if body.substitute else None,
    }
    return body.model_copy(update=upper)


def _ensure_complete(body: RaiseDeviation, today: date) -> None:
    """What every deviation says: where, what departs (one kind of departure), how far."""
    if body.part_number is None and not body.travelers:
        raise Refusal(
            "deviation_scope_missing", "A deviation names a part number, travelers, or both.", 422
        )
    limits = body.lower is not None or body.upper is not None
    if limits == (body.substitute is not None):
        raise Refusal(
            "deviation_departure_unclear",
            "A deviation departs in one way: widened limits (lower and/or upper) for a "
            "measurement, or a substitute part number or tool.",
            422,
        )
    if body.lower is not None and body.upper is not None and body.lower > body.upper:
        raise Refusal(
            "deviation_limits_crossed",
            f"The lower limit {body.lower!r} is above the upper limit {body.upper!r}.",
            422,
        )
    if len(body.reason.strip()) < 3:
        raise Refusal(
            "deviation_reason_missing", "A deviation says why (3 characters or more).", 422
        )
    if body.units is None and body.until is None:
        raise Refusal(
            "deviation_reach_missing",
            "A deviation says how far it reaches: a number of units, an until-date, or both.",
            422,
        )
    if body.until is not None and body.until < today:
        raise Refusal(
            "deviation_until_past", f"The until-date {body.until:%Y-%m-%d} has passed.", 422
        )


def _covered_items(conn: Connection, body: RaiseDeviation) -> list[Any]:
    """The data items the deviation would cover today: it must cover at least one."""
    trav_rows = conn.execute(
        select(t.travelers.c.number, t.work_orders.c.part_number)
        .join(t.work_orders, t.work_orders.c.id == t.travelers.c.work_order_id)
        .where(
            t.travelers.c.number.in_(body.travelers)
            if body.travelers
            else t.work_orders.c.part_number == body.part_number
        )
    ).all()
    found = {r.number: r.part_number for r in trav_rows}
    missing = [n for n in body.travelers if n not in found]
    if missing:
        raise Refusal("not_found", f"No traveler {', '.join(missing[:5])} in this plant.", 404)
    if not found:
        raise Refusal("not_found", f"No traveler of part {body.part_number} in this plant.", 404)
    other = [n for n, part in found.items() if body.part_number and part != body.part_number]
    if other:
        raise Refusal(
            "deviation_scope_mismatch",
            f"{other[0]} is part {found[other[0]]}, not {body.part_number}.",
            422,
        )
    query = (
        select(t.data_items, t.steps.c.number.label("step"))
        .join(t.steps, t.steps.c.id == t.data_items.c.step_id)
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .where(t.travelers.c.number.in_(list(found)))
    )
    if body.steps:
        query = query.where(t.steps.c.number.in_(body.steps))
    rows = conn.execute(query).all()
    return [r for r in rows if r.label.strip().lower() == body.item.lower()]


def _ensure_fits(body: RaiseDeviation, items: list[Any]) -> None:
    where = f" on step {', '.join(body.steps)}" if body.steps else ""
    if not items:
        raise Refusal(
            "deviation_item_unknown",
            f"No data item {body.item[:60]!r}{where} to deviate from.",
            422,
        )
    kinds = {ItemKind(i.kind) for i in items}
    if body.substitute is None:
        if kinds != {ItemKind.MEASUREMENT}:
            raise Refusal(
                "deviation_kind_mismatch",
                f"{body.item} is not a measurement: only a substitute can deviate from it.",
                422,
            )
        for i in items:  # widened, never narrowed: a tighter limit is a routing change
            if (body.lower is not None and i.lower is not None and body.lower > i.lower) or (
                body.upper is not None and i.upper is not None and body.upper < i.upper
            ):
                raise Refusal(
                    "deviation_not_wider",
                    f"A deviation widens limits: {body.item} on step {i.step} is already "
                    f"{i.lower!r}-{i.upper!r}.",
                    422,
                )
    elif not kinds <= {ItemKind.TOOL, ItemKind.MATERIAL}:
        raise Refusal(
            "deviation_kind_mismatch",
            f"{body.item} is not a tool or material item: a deviation widens its limits.",
            422,
        )


# --- reading --------------------------------------------------------------------------------------


def _deviations(conn: Connection, rows: list[Any], names: views.NameLookup) -> list[Deviation]:
    if not rows:
        return []
    approvals = views.signatures_of(conn, "deviation", [r.id for r in rows], names)
    used: dict[str, list[str]] = defaultdict(list)
    found = conn.execute(
        select(t.recorded_values.c.deviation, t.travelers.c.number)
        .distinct()
        .join(t.data_items, t.data_items.c.id == t.recorded_values.c.item_id)
        .join(t.steps, t.steps.c.id == t.data_items.c.step_id)
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .where(t.recorded_values.c.deviation.in_([r.number for r in rows]))
        .order_by(t.travelers.c.number)
    )
    for number, traveler in found:
        used[number].append(traveler)
    return [_wire(r, approvals.get(r.id, []), used[r.number]) for r in rows]


def _wire(row: Any, approvals: list[Any], used_by: list[str]) -> Deviation:
    role = Role(row.approval_role) if row.approval_role else None
    return Deviation(
        number=row.number,
        part_number=row.part_number,
        travelers=_listed(row.travelers),
        steps=_listed(row.steps),
        item=row.item,
        lower=row.lower,
        upper=row.upper,
        substitute=row.substitute,
        reason=row.reason,
        units=row.units,
        until=row.until,
        raised_by=row.raised_by,
        raised_at=row.raised_at,
        status=rules.deviation_status(len(approvals), role),
        approval_role=role,
        approvals=tuple(approvals),
        used_by=tuple(used_by),
    )


# Built once: every action on a traveler some deviation covers reads it (the rules ask whether
# a deviation allows what it records), and building a statement costs more than running it.
_FOR_TRAVELER = (
    select(t.deviations)
    .where(views.covering_deviations(bindparam("part"), bindparam("number")))
    .order_by(_D.id)
)


def for_traveler(conn: Connection, number: str, part_number: str) -> tuple[Deviation, ...]:
    """Deviations raised against the traveler's part number (naming no travelers) or naming
    it, approved or not (`rules.deviation_covers` has the last word)."""
    rows = conn.execute(_FOR_TRAVELER, {"part": part_number, "number": number}).all()
    return tuple(_deviations(conn, list(rows), views.NameLookup(conn)))


def all_deviations(conn: Connection) -> list[Deviation]:
    rows = conn.execute(select(t.deviations).order_by(_D.id)).all()
    return _deviations(conn, list(rows), views.NameLookup(conn))


def _one(conn: Connection, number: str, *, lock: bool = False) -> Deviation:
    query = select(t.deviations).where(_D.number == number)
    row = conn.execute(query.with_for_update() if lock else query).one()
    return _deviations(conn, [row], views.NameLookup(conn))[0]


def row_id(conn: Connection, number: str) -> int:
    return int(conn.execute(select(_D.id).where(_D.number == number)).scalar_one())


def claim(conn: Connection, number: str, trav: Traveler, on: date) -> None:
    """A traveler relies on the deviation: read it again under a row lock (another traveler may
    have taken the last unit meanwhile, in another server process) and apply the rule again."""
    rules.ensure_deviation_effective(_one(conn, number, lock=True), trav, on)


def approved_message(dev: Deviation, signer: str) -> str:
    """What the approval did, `dev` as it stood before it."""
    if dev.status == "raised" and dev.approval_role is not None:
        return (
            f"{dev.number} approved by {signer}; it takes effect with its second approval "
            f"({dev.approval_role.value})."
        )
    now = rules.deviation_text(dev.model_copy(update={"status": "approved"}))
    return f"{dev.number} approved by {signer}, in effect: {now}"
