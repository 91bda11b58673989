"""Release 1's rows that matter, entered in the audit chain by the upgrade to version 2.

From version 2 on, every value, signature, consumed lot, tool use, NCR and hold is written with
an audit record holding all of its columns, and `kiosk audit verify` re-derives each row from the
chain (kiosk.server.records). Release 1's records did not hold rows that way. The upgrade
therefore appends, for each such row, one sealed `migrate_row` record with the row's complete
state, and the checker takes it as the row's origin like any other: from the upgrade on, a row
edited, deleted or inserted behind the server's back is named, whichever release wrote it.

The records are appended in the order release 1 wrote the rows (found from release 1's own
records: `record_value` on `item:N`, `sign` on `step:N`, `place_hold`, `raise_ncr`), because a
step signature's content hash is recomputed from the values recorded before it.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping

from kiosk.server import records
from kiosk.server.migrations.chain import Appender, audit_log

# kind (the entity prefix of its records) → table, in the order rows of one action are written
TABLES = {
    "value": "recorded_values",
    "consumption": "consumption",
    "tool_use": "tool_uses",
    "ncr": "ncrs",
    "hold": "holds",
    "signature": "signatures",
}
LAST = 1 << 62
"""The place of a row release 1's records do not mention: after all that they do."""

Key = tuple[str, int]


def seal_rows(conn: Connection, chain: Appender) -> int:
    """Append a `migrate_row` record for every tracked row; return how many."""
    rows = _rows(conn)
    origin = _origins(conn, rows)
    named = _named_before(conn)
    rank = {kind: n for n, kind in enumerate(TABLES)}
    ordered = sorted(
        ((kind, row) for kind, found in rows.items() for row in found),
        key=lambda entry: (origin.get((entry[0], entry[1]["id"]), LAST), rank[entry[0]]),
    )
    for kind, row in ordered:
        state = records.state(dict(row))
        # Keys release 1's records put under this entity that are not columns of the row
        # (release 1 named a hold's release signature `hold:N`): the row's full state says
        # they are not part of it.
        void = {name: None for name in sorted(named[(kind, row["id"])] - state.keys())}
        chain.append("migrate_row", f"{kind}:{row['id']}", {**void, **state})
    return len(ordered)


def _rows(conn: Connection) -> dict[str, list[RowMapping]]:
    """Each tracked table's rows, read with the column types the database reports (as
    `kiosk audit verify` will read them: the same booleans, times and numbers)."""
    found = {}
    for kind, name in TABLES.items():
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
        found[kind] = list(conn.execute(sa.select(table).order_by(table.c.id)).mappings())
    return found


def _origins(conn: Connection, rows: dict[str, list[RowMapping]]) -> dict[Key, int]:
    """Row → sequence number of the release-1 record written with it."""
    values: dict[int, deque[int]] = defaultdict(deque)
    for row in rows["value"]:
        values[row["item_id"]].append(row["id"])
    signatures: dict[tuple[str, int], deque[int]] = defaultdict(deque)
    for row in rows["signature"]:
        signatures[(row["subject"], row["subject_id"])].append(row["id"])
    ncrs = {row["number"]: row["id"] for row in rows["ncr"]}
    origin: dict[Key, int] = {}
    chain = sa.select(audit_log.c.seq, audit_log.c.action, audit_log.c.entity)
    for seq, action, entity in conn.execute(chain.order_by(audit_log.c.seq)):
        found = _written_by(action, entity, values, signatures, ncrs)
        if found is not None:
            origin.setdefault(found, seq)
    for kind in ("consumption", "tool_use"):
        for row in rows[kind]:
            if ("value", row["value_id"]) in origin:
                origin[(kind, row["id"])] = origin[("value", row["value_id"])]
    return origin


def _written_by(
    action: str,
    entity: str,
    values: dict[int, deque[int]],
    signatures: dict[tuple[str, int], deque[int]],
    ncrs: dict[str, int],
) -> Key | None:
    kind, _, ident = entity.partition(":")
    if action == "raise_ncr" and ident in ncrs:
        return ("ncr", ncrs[ident])
    if not ident.isdigit():
        return None
    number = int(ident)
    if action == "record_value" and kind == "item" and values[number]:
        return ("value", values[number].popleft())
    if action == "sign" and signatures[(kind, number)]:
        return ("signature", signatures[(kind, number)].popleft())
    if action == "place_hold" and kind == "hold":
        return ("hold", number)
    return None


def _named_before(conn: Connection) -> defaultdict[Key, set[str]]:
    """The keys existing records give each tracked entity (what the checker will replay)."""
    named: defaultdict[Key, set[str]] = defaultdict(set)
    chain = sa.select(audit_log.c.entity, audit_log.c.new).where(audit_log.c.new.is_not(None))
    for entity, new in conn.execute(chain):
        kind, _, ident = entity.partition(":")
        if kind in TABLES and ident.isdigit():
            body: Any = json.loads(new)
            if isinstance(body, dict):
                named[(kind, int(ident))] |= set(body)
    return named
