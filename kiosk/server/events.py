"""The event feed: what happened on the floor, read from the audit chain.

Every action appends its audit records inside its own transaction (kiosk.server.audit), in one
strict order (`seq`), and never changes them. So the feed needs no write of its own: it is
durable and ordered because the chain is, and the cursor a consumer keeps is an audit `seq`.
Each event is made from one record and from rows that never change once written (a traveler's
number, a step's number, a data item's limits), so reading a page again gives the same events.

Which records are events is the table EVENTS below; a new kind of event is a new line there.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select

from kiosk import rules
from kiosk.server import schema as t
from kiosk.wire import EventFeed, EventKind, PlantEvent

FEED_PAGE = 100
FEED_MAX = 1000
COMPLETE = json.dumps("complete")  # how step_status records the new status
FAILED = '%"passed":false%'  # canonical JSON: no spaces (confirmed on the parsed record)
TOPIC_ROOT = "plant"


@dataclass(frozen=True)
class Record:
    """One audit record the feed looks at."""

    seq: int
    row: Row[Any]

    @property
    def kind(self) -> str:
        return str(self.row.entity).partition(":")[0]

    @property
    def ident(self) -> int:
        tail = str(self.row.entity).partition(":")[2]
        return int(tail) if tail.isdigit() else 0

    @property
    def new(self) -> Any:
        return None if self.row.new is None else json.loads(self.row.new)


def _failed_value(record: Record) -> bool:
    new = record.new
    return isinstance(new, dict) and new.get("passed") is False


# audit action -> (event, does this record make it)
EVENTS: dict[str, tuple[EventKind, Callable[[Record], bool]]] = {
    "step_status": (EventKind.STEP_COMPLETED, lambda r: r.row.new == COMPLETE),
    "record_value": (EventKind.VALUE_OUT_OF_TOLERANCE, _failed_value),
    "raise_ncr": (EventKind.NCR_RAISED, lambda r: True),
    "disposition_ncr": (EventKind.NCR_DISPOSITIONED, lambda r: True),
    "place_hold": (EventKind.HOLD_PLACED, lambda r: True),
    "release_hold": (EventKind.HOLD_RELEASED, lambda r: True),
}


# A disposition that ends its traveler is also that traveler's last event (rules.ENDING).
_ENDED = {d.value: EventKind(f"traveler_{ended.value}") for d, ended in rules.ENDING.items()}


def head(conn: Connection) -> int:
    return int(conn.execute(select(t.audit_head.c.seq).where(t.audit_head.c.id == 1)).scalar_one())


def feed(conn: Connection, after: int, limit: int = FEED_PAGE) -> EventFeed:
    """Events from the audit records after `after`, at most `limit` records' worth.

    The head is read first: every record up to it has committed (the head moves in the same
    transaction as its records), so moving the cursor to it can never skip a record that a
    transaction still writing would add below it.
    """
    top = head(conn)
    log = t.audit_log
    rows = conn.execute(
        select(log.c.seq, log.c.server_time, log.c.station_time, log.c.station, log.c.actor)
        .add_columns(log.c.action, log.c.entity, log.c.new)
        .where(log.c.seq > after, log.c.seq <= top, log.c.action.in_(list(EVENTS)))
        .where(or_(log.c.action != "step_status", log.c.new == COMPLETE))
        .where(or_(log.c.action != "record_value", log.c.new.like(FAILED)))
        .order_by(log.c.seq)
        .limit(limit)
    ).all()
    records = [Record(int(r.seq), r) for r in rows if EVENTS[r.action][1](Record(int(r.seq), r))]
    more = len(rows) == limit
    cursor = int(rows[-1].seq) if more else max(top, after)
    made = Context.load(conn, records).events(records)
    return EventFeed(events=tuple(made), next_cursor=cursor, head=top, more=more)


# --- what the records refer to ---------------------------------------------------------------------


def segment(text: str | None) -> str:
    """One level of an MQTT topic: no level separator or wildcard in it, never empty."""
    cleaned = "".join("_" if c in "/+#\0" else c for c in (text or ""))
    return cleaned or "_"


@dataclass
class Context:
    """The rows a page of records refers to, read in a few queries for the whole page."""

    conn: Connection
    steps: dict[int, Row[Any]] = field(default_factory=dict)
    values: dict[int, Row[Any]] = field(default_factory=dict)
    ncrs: dict[int, Row[Any]] = field(default_factory=dict)
    holds: dict[int, Row[Any]] = field(default_factory=dict)
    travelers: dict[int, str] = field(default_factory=dict)
    work_centers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection, records: Sequence[Record]) -> Context:
        found = cls(conn)
        wanted: dict[str, set[int]] = defaultdict(set)
        for r in records:
            wanted[r.kind].add(r.ident)
        found.values = _by_id(conn, _VALUES, t.recorded_values.c.id, wanted["value"])
        found.ncrs = _by_id(conn, select(t.ncrs), t.ncrs.c.id, wanted["ncr"])
        found.holds = _by_id(conn, _HOLDS, t.holds.c.id, wanted["hold"])
        step_ids = wanted["step"] | {v.step_id for v in found.values.values()}
        step_ids |= {n.step_id for n in found.ncrs.values() if n.step_id is not None}
        found.steps = _by_id(conn, select(t.steps), t.steps.c.id, step_ids)
        traveler_ids = {s.traveler_id for s in found.steps.values()}
        traveler_ids |= {n.traveler_id for n in found.ncrs.values()}
        traveler_ids |= {h.traveler_id for h in found.holds.values()}
        rows = _by_id(conn, select(t.travelers), t.travelers.c.id, traveler_ids)
        found.travelers = {i: r.number for i, r in rows.items()}
        names = {r.row.station for r in records if r.row.station}
        if names:
            query = select(t.stations.c.name, t.stations.c.work_center)
            query = query.where(t.stations.c.name.in_(names))
            found.work_centers = {n: wc for n, wc in conn.execute(query)}
        return found

    def events(self, records: Sequence[Record]) -> Iterator[PlantEvent]:
        finished = Completion(self.conn)
        for r in records:
            event, _made = EVENTS[r.row.action]
            facts = self._facts(r)
            if facts is None:  # its row is gone: `kiosk audit verify` reports that, not the feed
                continue
            yield self._event(r, event, 0, facts)
            tid = facts.pop("_traveler_id")
            if event is EventKind.STEP_COMPLETED and finished.at(tid, r.seq):
                yield self._event(r, EventKind.TRAVELER_COMPLETED, 1, facts)
            ended = _ENDED.get(facts.get("disposition") or "")
            if event is EventKind.NCR_DISPOSITIONED and ended is not None:
                yield self._event(r, ended, 1, facts)  # scrap and return end the traveler

    def _event(self, r: Record, event: EventKind, n: int, facts: dict[str, Any]) -> PlantEvent:
        station = r.row.station
        work_center = self.work_centers.get(station) if station else None
        shown = {k: v for k, v in facts.items() if not k.startswith("_")}
        topic = "/".join(
            segment(part)
            for part in (TOPIC_ROOT, work_center, station, shown["traveler"], event.value)
        )
        return PlantEvent(
            id=f"{r.seq}.{n}",
            cursor=r.seq,
            event=event,
            topic=topic,
            at=r.row.server_time,
            station_time=r.row.station_time,
            work_center=work_center,
            station=station,
            actor=r.row.actor,
            **shown,
        )

    def _facts(self, r: Record) -> dict[str, Any] | None:
        """What the event says besides who, where and when; None if its row is not there."""
        if r.kind == "step":
            step = self.steps.get(r.ident)
            return None if step is None else self._on_step(step.traveler_id, step)
        if r.kind == "value":
            return self._value(r)
        if r.kind == "ncr":
            return self._ncr(r)
        if r.kind == "hold":
            return self._hold(r)
        return None

    def _on_step(self, traveler_id: int, step: Row[Any] | None) -> dict[str, Any]:
        return {
            "_traveler_id": traveler_id,
            "traveler": self.travelers.get(traveler_id, "?"),
            "step": None if step is None else step.number,
        }

    def _value(self, r: Record) -> dict[str, Any] | None:
        value = self.values.get(r.ident)
        if value is None:
            return None
        step = self.steps[value.step_id]  # a value's item is on a step, always
        return {
            **self._on_step(step.traveler_id, step),
            "item": value.label,
            "value": r.new.get("value"),
            "unit": value.unit,
            "lower": value.lower,
            "upper": value.upper,
        }

    def _ncr(self, r: Record) -> dict[str, Any] | None:
        ncr = self.ncrs.get(r.ident)
        if ncr is None:
            return None
        facts = self._on_step(ncr.traveler_id, self.steps.get(ncr.step_id))
        facts.update(ncr=ncr.number, defect_code=ncr.defect_code, quantity=ncr.quantity)
        if r.row.action == "disposition_ncr":
            facts["disposition"] = r.new.get("disposition")
        else:
            facts["reason"] = ncr.description
        return facts

    def _hold(self, r: Record) -> dict[str, Any] | None:
        hold = self.holds.get(r.ident)
        if hold is None:
            return None
        facts = self._on_step(hold.traveler_id, None)
        facts.update(reason=hold.reason, ncr=hold.ncr_number)
        return facts


_VALUES = (
    select(t.recorded_values.c.id, t.data_items.c.step_id, t.data_items.c.label)
    .add_columns(t.data_items.c.unit, t.data_items.c.lower, t.data_items.c.upper)
    .join(t.data_items, t.data_items.c.id == t.recorded_values.c.item_id)
)
_HOLDS = select(t.holds, t.ncrs.c.number.label("ncr_number")).outerjoin(
    t.ncrs, t.ncrs.c.id == t.holds.c.ncr_id
)


def _by_id(conn: Connection, query: Any, key: Any, ids: set[int]) -> dict[int, Row[Any]]:
    found: dict[int, Row[Any]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        for row in conn.execute(query.where(key.in_(ordered[start : start + 500]))):
            found[int(row.id)] = row
    return found


class Completion:
    """Whether a step completed at record `seq` completed its traveler: every step the traveler
    had then was complete by then. Steps added later (rework) do not count; from the chain
    alone, so the answer for an old record never changes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.marks: dict[int, tuple[set[str], dict[str, int], dict[str, int]]] = {}

    def at(self, traveler_id: int, seq: int) -> bool:
        if traveler_id not in self.marks:
            self.marks[traveler_id] = self._marks(traveler_id)
        steps, completed, added = self.marks[traveler_id]
        return all(
            added.get(step, 0) > seq or completed.get(step, seq + 1) <= seq for step in steps
        )

    def _marks(self, traveler_id: int) -> tuple[set[str], dict[str, int], dict[str, int]]:
        ids = self.conn.execute(select(t.steps.c.id).where(t.steps.c.traveler_id == traveler_id))
        steps = {f"step:{i}" for (i,) in ids}
        log = t.audit_log
        rows = self.conn.execute(
            select(log.c.entity, log.c.action, log.c.seq).where(
                log.c.entity.in_(sorted(steps)),
                or_(
                    log.c.action == "add_step",
                    and_(log.c.action == "step_status", log.c.new == COMPLETE),
                ),
            )
        )
        completed: dict[str, int] = {}
        added: dict[str, int] = {}
        for entity, action, seq in rows:
            marks = added if action == "add_step" else completed
            marks[entity] = min(marks.get(entity, seq), seq)
        return steps, completed, added
