"""The audit trail: an append-only chain where each record's hash covers the one before it.

h_n = SHA-256(h_{n-1} || canonical JSON of record n). Editing, deleting or reordering any record
breaks the chain from that record on, and `verify` names the first one that no longer fits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from kiosk.server.schema import audit_checkpoints, audit_head, audit_log

GENESIS = bytes(32)


def canonical(value: Any) -> str:
    """Sorted keys, fixed separators, UTF-8: the same bytes on every machine and database."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def micros(moment: datetime | None) -> int | None:
    """Integer UTC microseconds: SQLite hands datetimes back without a zone, PostgreSQL with one."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def record_hash(prev: bytes, row: dict[str, Any]) -> bytes:
    body = {
        "seq": row["seq"],
        "server_time": micros(row["server_time"]),
        "station_time": micros(row["station_time"]),
        "station": row["station"],
        "actor": row["actor"],
        "action": row["action"],
        "entity": row["entity"],
        "old": row["old"],
        "new": row["new"],
    }
    return hashlib.sha256(prev + canonical(body).encode()).digest()


def append(
    conn: Connection,
    *,
    action: str,
    entity: str,
    actor: str | None,
    station: str | None,
    old: Any = None,
    new: Any = None,
    station_time: datetime | None = None,
    now: datetime | None = None,
) -> int:
    """Append one record inside the caller's transaction and return its sequence number.

    The head row is locked first (FOR UPDATE on PostgreSQL, the write lock on SQLite), so
    concurrent server processes extend the chain strictly one after another.
    """
    head = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    row: dict[str, Any] = {
        "seq": head.seq + 1,
        "server_time": now or datetime.now(UTC),
        "station_time": station_time,
        "station": station,
        "actor": actor,
        "action": action,
        "entity": entity,
        "old": None if old is None else canonical(old),
        "new": None if new is None else canonical(new),
    }
    digest = record_hash(head.hash, row)
    conn.execute(audit_log.insert().values(**row, prev_hash=head.hash, hash=digest))
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=row["seq"], hash=digest))
    return int(row["seq"])


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    first_bad: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.records} records"
        return f"broken at record {self.first_bad}: {self.reason}"


def checkpoint_mac(key: bytes, seq: int, digest: bytes) -> str:
    return hmac.new(key, seq.to_bytes(8, "big") + digest, hashlib.sha256).hexdigest()


def seal(conn: Connection, key: bytes, now: datetime) -> int | None:
    """Checkpoint the chain's head (once per head): its sequence, hash and a MAC over both."""
    head = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).one()
    sealed = conn.execute(
        select(audit_checkpoints.c.id).where(audit_checkpoints.c.seq == head.seq).limit(1)
    ).first()
    if head.seq == 0 or sealed is not None:
        return None
    mac = checkpoint_mac(key, head.seq, bytes(head.hash))
    conn.execute(
        audit_checkpoints.insert().values(seq=head.seq, hash=head.hash, mac=mac, server_time=now)
    )
    return int(head.seq)


def verify(conn: Connection, key: bytes | None = None) -> Verdict:
    """Walk the whole chain in sequence order and report the first record that does not fit.

    With the checkpoint key, every signed checkpoint must also match the chain: that catches a
    chain rewritten from some record on by someone who recomputed all the hashes after it.
    """
    marks = {}
    if key is not None:
        for cp in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)):
            if not hmac.compare_digest(cp.mac, checkpoint_mac(key, cp.seq, bytes(cp.hash))):
                return Verdict(False, 0, cp.seq, "its signed checkpoint is not genuine")
            marks[cp.seq] = bytes(cp.hash)
    prev, expected, count = GENESIS, 1, 0
    for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings():
        if row["seq"] != expected:
            return Verdict(False, count, expected, f"record {expected} is missing or out of order")
        if bytes(row["prev_hash"]) != prev:
            return Verdict(False, count, row["seq"], "does not follow the record before it")
        digest = record_hash(prev, dict(row))
        if digest != bytes(row["hash"]):
            return Verdict(False, count, row["seq"], "its content was changed after it was written")
        if marks.get(row["seq"], digest) != digest:
            return Verdict(False, count, row["seq"], "the chain differs from its signed checkpoint")
        prev, expected, count = digest, expected + 1, count + 1
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != count or bytes(head.hash) != prev:
        return Verdict(
            False, count, count + 1, f"the chain ends at {count}, its head says {head.seq}"
        )
    if marks and max(marks) > count:
        return Verdict(
            False, count, count + 1, f"a signed checkpoint vouches for record {max(marks)}"
        )
    return Verdict(True, count)
