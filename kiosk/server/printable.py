"""What a printed or exported as-built record stands on: its canonical bytes, their SHA-256, and
the head of the audit chain it was read with.

The digest is defined here once. It is the SHA-256 of the bytes `canonical_json` gives, which are
exactly what `kiosk export as-built --format json` writes, what the PDF carries as its attached
`as-built.json`, and what the PDF prints on every page: `sha256sum` of either file checks it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from kiosk.server import audit, erp
from kiosk.server.schema import audit_head
from kiosk.wire import AsBuilt, AssetHistory, Checkpoint


def canonical_json(record: AsBuilt | AssetHistory) -> bytes:
    """Keys sorted, two-space indent, UTF-8 (no \\u escapes), one final newline.

    Python's json and not pydantic's serializer: its float and string output is fixed by the
    language, so the same record gives the same bytes whatever pydantic version made them.
    """
    text = json.dumps(record.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def record_sha256(record: AsBuilt | AssetHistory) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """The audit chain as it stood when the record was read: its last record and latest seal."""

    seq: int
    hash: str
    checkpoint: Checkpoint | None


@dataclass(frozen=True)
class _Sealed:
    """A record with the chain head read in the same transaction; its digest and JSON."""

    head: ChainHead

    @property
    def sha256(self) -> str:
        return record_sha256(self.record)  # type: ignore[attr-defined]

    @property
    def json(self) -> bytes:
        return canonical_json(self.record)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Printable(_Sealed):
    """One as-built record with the chain head read in the same transaction."""

    record: AsBuilt


def chain_head(conn: Connection) -> ChainHead:
    """The head, share-locked until the caller's transaction ends.

    Every change to a traveler appends to the chain and so takes the head's update lock as it
    commits. Holding a share lock (PostgreSQL; SQLite reads from one snapshot anyway), no change
    can land between reading the head and reading the record: the head is the one it was made from.
    """
    row = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash)
        .where(audit_head.c.id == 1)
        .with_for_update(read=True)
    ).one()
    return ChainHead(int(row.seq), bytes(row.hash).hex(), audit.latest_checkpoint(conn))


def read(conn: Connection, number: str) -> Printable:
    """The chain head, then the record, in the caller's transaction (`Store.read()` will do)."""
    head = chain_head(conn)
    return Printable(record=erp.as_built(conn, number.strip().upper()), head=head)


@dataclass(frozen=True)
class PrintableHistory(_Sealed):
    """An asset's as-maintained record with the chain head read in the same transaction."""

    record: AssetHistory

    def tasks(self) -> list[Printable]:
        """Each task's as-built with the same head: printed as `kiosk export as-built` prints it."""
        return [Printable(record=task, head=self.head) for task in self.record.tasks]


def read_history(conn: Connection, asset: str) -> PrintableHistory:
    head = chain_head(conn)
    return PrintableHistory(record=erp.asset_history(conn, asset), head=head)
