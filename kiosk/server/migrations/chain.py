"""The audit chain as the migrations see it: checked before an upgrade, extended by one.

Frozen on purpose: the tables are named here column by column, as every schema version so far
has them, rather than taken from schema.py, which moves on. The chain's format itself (the
record hash, the record MAC, a row's state) is kiosk.server.audit's and kiosk.server.records':
it cannot change without every existing chain failing, so it is shared, not copied.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from kiosk.server import audit
from kiosk.server.schema import UtcDateTime

_COLUMNS = ("seq", "station", "actor", "action", "entity", "old", "new", "prev_hash", "hash")
audit_log = sa.table(
    "audit_log",
    *(sa.column(name) for name in _COLUMNS),
    sa.column("server_time", UtcDateTime()),
    sa.column("station_time", UtcDateTime()),
    sa.column("mac"),
)
audit_head = sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash"))
checkpoints = sa.table("audit_checkpoints", sa.column("seq"), sa.column("hash"), sa.column("mac"))


class UpgradeRefused(Exception):
    """The database cannot be upgraded as it is; nothing was changed."""


def chain_problem(conn: Connection, checkpoint_key: bytes | None) -> str | None:
    """What is wrong with the chain, in one sentence naming the first bad record, or None.

    The checks release 1 could make (each record follows the one before, hashes match, the head
    agrees, signed checkpoints are genuine and agree): an upgrade seals the chain as it stands,
    so it must not seal one that was already rewritten.
    """
    marks: dict[int, bytes] = {}
    for cp in conn.execute(sa.select(checkpoints.c.seq, checkpoints.c.hash, checkpoints.c.mac)):
        if checkpoint_key is not None and not hmac.compare_digest(
            cp.mac, audit.checkpoint_mac(checkpoint_key, cp.seq, bytes(cp.hash))
        ):
            return f"record {cp.seq}: its signed checkpoint is not genuine"
        marks[cp.seq] = bytes(cp.hash)
    prev, count = audit.GENESIS, 0
    rows = conn.execute(sa.select(*_record_columns()).order_by(audit_log.c.seq)).mappings()
    for row in rows:
        count += 1
        if row["seq"] != count:
            return f"record {count} is missing or out of order"
        digest = audit.record_hash(prev, dict(row))
        if bytes(row["prev_hash"]) != prev or digest != bytes(row["hash"]):
            return f"record {count} was changed after it was written"
        if marks.get(count, digest) != digest:
            return f"record {count} differs from its signed checkpoint"
        prev = digest
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != count or bytes(head.hash) != prev:
        return f"the chain ends at record {count}, but its head says {head.seq}"
    if marks and max(marks) > count:
        return f"the chain ends at record {count}, but a checkpoint vouches for {max(marks)}"
    return None


def _record_columns() -> list[Any]:
    return [audit_log.c[name] for name in (*_COLUMNS, "server_time", "station_time")]


@dataclass
class Appender:
    """Appends sealed records to the chain inside the migration's transaction (the head row is
    held for the whole upgrade), written in one go by `flush`."""

    conn: Connection
    key: bytes
    now: datetime
    seq: int = 0
    prev: bytes = audit.GENESIS
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def at_head(cls, conn: Connection, key: bytes, now: datetime) -> Appender:
        head = conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one()
        return cls(conn, key, now, int(head.seq), bytes(head.hash))

    def append(self, action: str, entity: str, new: Any, old: Any = None) -> None:
        self.seq += 1
        row: dict[str, Any] = {
            "seq": self.seq,
            "server_time": self.now,
            "station_time": None,
            "station": None,
            "actor": "kiosk db upgrade",
            "action": action,
            "entity": entity,
            "old": None if old is None else audit.canonical(old),
            "new": None if new is None else audit.canonical(new),
        }
        digest = audit.record_hash(self.prev, row)
        mac = audit.record_mac(self.key, digest)
        self.rows.append({**row, "prev_hash": self.prev, "hash": digest, "mac": mac})
        self.prev = digest

    def flush(self) -> None:
        if self.rows:
            self.conn.execute(audit_log.insert(), self.rows)
            self.conn.execute(
                audit_head.update().where(audit_head.c.id == 1).values(seq=self.seq, hash=self.prev)
            )
        self.rows = []
