"""A group's values, written together as it commits.

On PostgreSQL every statement is a round trip, and a value's insert was the one statement a
drained value had of its own: the server spent 40 % of a drain waiting for them, one after
another. On SQLite a statement is a call in the process, but each of a value's two cost more in
SQLAlchemy than in SQLite. In a transaction that stands or falls whole (`audit.all_or_nothing`) the
group's read-ahead draws ids for its values in one statement (`draw`): from the table's sequence on
PostgreSQL; on SQLite the ones after the last, which are this transaction's alone, as it holds the
database's one write lock from its BEGIN IMMEDIATE. Each value then takes its id at once (`take`)
and waits, and all of them are written in two statements of many rows (pipelined on PostgreSQL):
the rows, then each item's latest. So a value costs no statement of its own.

Nothing reads a value before it is written: whatever waits is written before any other statement
runs on the connection (an engine event, `watch`) and before the transaction's audit records
(`Store.begin`). Savepoints, plain SQL that the event does not see, never meet a value waiting:
ids are drawn only where none is taken. Whatever the database refuses in writing them (a
constraint) cannot be laid at one action's door: it raises RunAgainCarefully, and GroupCommit runs
the group again with a savepoint for each action and nothing drawn ahead, so the refused value is
refused alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from kiosk.server import schema as t

WAITING = "kiosk.values_behind"
"""Where a transaction keeps its drawn ids and the values waiting to be written."""


@dataclass
class _Waiting:
    ids: deque[int]
    """Drawn and not yet taken, in order."""
    rows: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    """The values waiting, by the columns they are given (one statement for each set)."""
    latest: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Each item's last value waiting, and whether any value of the item failed."""


def watch(engine: Engine) -> None:
    """Write what waits before any other statement on `engine`'s connections."""
    event.listen(engine, "before_execute", _before_execute)


def draw(conn: Connection, count: int) -> None:
    """Draw ids for `count` values of this transaction."""
    if count <= 0:
        return
    if conn.dialect.name == "postgresql":
        ids = deque(conn.execute(_DRAW, {"count": count}).scalars())
    else:
        last = int(conn.execute(_LAST).scalar_one())
        ids = deque(range(last + 1, last + 1 + count))
    conn.info[WAITING] = _Waiting(ids=ids)


def take(conn: Connection, row: dict[str, Any], failed: bool) -> int | None:
    """The id of the value `row`, left to be written with the others; None when no id was drawn
    for it (the caller writes it now)."""
    waiting: _Waiting | None = conn.info.get(WAITING)
    if waiting is None or not waiting.ids:
        return None
    value_id = waiting.ids.popleft()
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


_LAST = select(func.coalesce(func.max(t.recorded_values.c.id), 0))
_DRAW = text(
    "SELECT nextval(pg_get_serial_sequence('recorded_values', 'id'))"
    " FROM generate_series(1, :count)"
)
# The item keeps its latest value and whether any value failed: reads never aggregate values.
MADE_LATEST = (
    update(t.data_items)
    .where(t.data_items.c.id == bindparam("item"))
    .values(latest_value_id=bindparam("latest"), failed=bindparam("now_failed"))
)
