"""A group's values, written together as it commits (PostgreSQL).

There every statement is a round trip, and a value's insert was the one statement a drained value
has of its own: the server spent 40 % of a drain waiting for them, one after another. In a
transaction that stands or falls whole (`audit.all_or_nothing`) the group's read-ahead draws ids
for its values from the table's sequence, in one statement (`draw`); each value then takes its id
at once (`take`) and waits, and all of them are written in two pipelined statements: the rows,
then each item's latest. So a value costs no round trip of its own.

Nothing reads a value before it is written: whatever waits is written before any other statement
runs on the connection (an engine event, `watch`) and before the transaction's audit records
(`Store.begin`). Whatever the database refuses in writing them (a constraint) cannot be laid at
one action's door: it raises RunAgainCarefully, and GroupCommit runs the group again with a
savepoint for each action and nothing drawn ahead, so the refused value is refused alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, insert, text, update
from sqlalchemy.exc import DBAPIError

from kiosk.server import schema as t

WAITING = "kiosk.values_behind"
"""Where a transaction keeps its drawn ids and the values waiting to be written."""


@dataclass
class _Waiting:
    ids: list[int]
    """Drawn from the sequence and not yet taken, in order."""
    rows: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    """The values waiting, by the columns they are given (one statement for each set)."""
    latest: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Each item's last value waiting, and whether any value of the item failed."""


def watch(engine: Engine) -> None:
    """Write what waits before any other statement on `engine`'s connections."""
    event.listen(engine, "before_execute", _before_execute)


def draw(conn: Connection, count: int) -> None:
    """Draw ids for `count` values of this transaction from the values' sequence."""
    if count <= 0:
        return
    ids = conn.execute(_DRAW, {"count": count}).scalars().all()
    conn.info[WAITING] = _Waiting(ids=list(ids))


def take(conn: Connection, row: dict[str, Any], failed: bool) -> int | None:
    """The id of the value `row`, left to be written with the others; None when no id was drawn
    for it (the caller writes it now)."""
    waiting: _Waiting | None = conn.info.get(WAITING)
    if waiting is None or not waiting.ids:
        return None
    value_id = waiting.ids.pop(0)
    waiting.rows.setdefault(tuple(row), []).append({**row, "id": value_id})
    item = row["item_id"]
    waiting.latest[item] = {"item": item, "latest": value_id, "now_failed": failed}
    return value_id


def write(conn: Connection) -> None:
    """Write the values waiting, then make each its item's latest."""
    waiting: _Waiting | None = conn.info.get(WAITING)
    if waiting is None or not waiting.rows:
        return
    rows, latest = waiting.rows, waiting.latest
    waiting.rows, waiting.latest = {}, {}  # emptied first: these statements find nothing waiting
    try:
        for given in rows.values():
            conn.execute(insert(t.recorded_values), given)
        conn.execute(MADE_LATEST, list(latest.values()))
    except DBAPIError as failure:
        # Whichever value it was, its action's savepoint was skipped: the group runs again.
        # (Imported here: audit builds on the store, and the store on this module.)
        from kiosk.server.audit import RunAgainCarefully

        raise RunAgainCarefully from failure


def forget(conn: Connection) -> None:
    conn.info.pop(WAITING, None)


def _before_execute(conn: Connection, *_args: object) -> None:
    if WAITING in conn.info:
        write(conn)


_DRAW = text(
    "SELECT nextval(pg_get_serial_sequence('recorded_values', 'id'))"
    " FROM generate_series(1, :count)"
)
MADE_LATEST = (  # an item's latest value, and whether any value of it failed
    update(t.data_items)
    .where(t.data_items.c.id == bindparam("item"))
    .values(latest_value_id=bindparam("latest"), failed=bindparam("now_failed"))
)
