"""The audit trail: an append-only chain where each record's hash covers the one before it.

h_n = SHA-256(h_{n-1} || canonical JSON of record n). Editing, deleting or reordering any record
breaks the chain from that record on, and `verify` names the first one that no longer fits.
Each record also carries HMAC(k, h_n) under a key derived from the plant secret, which is not in
the database: someone who rewrites records and recomputes every hash after them cannot make
those, so with the secret the first rewritten record is named. What a MAC cannot show, a chain
cut back to an earlier record, the checkpoints kept outside the database show (witnesses).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Connection, bindparam, select, update

from kiosk.server.schema import audit_checkpoints, audit_head, audit_log, idempotency
from kiosk.server.store import AUDIT_KEY, PENDING_AUDIT
from kiosk.wire import Checkpoint

if TYPE_CHECKING:
    from kiosk.server.files import FileStore

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
) -> None:
    """Append one record inside the caller's transaction.

    Within `Store.begin()` the record waits with the transaction's others and all are written
    just before it commits (`Pending.write`): the chain's head is locked for that moment only,
    not for the whole transaction, and a batch of actions costs three statements, not three each.
    """
    if conn.info.get(AUDIT_KEY) is None:
        raise RuntimeError("the audit trail is written only with the plant secret at hand")
    row: dict[str, Any] = {
        "server_time": now or datetime.now(UTC),
        "station_time": station_time,
        "station": station,
        "actor": actor,
        "action": action,
        "entity": entity,
        "old": None if old is None else canonical(old),
        "new": None if new is None else canonical(new),
    }
    pending = conn.info.get(PENDING_AUDIT)
    if pending is None:  # a connection of its own making: write at once
        Pending([row]).write(conn)
    else:
        pending.rows.append(row)


class Pending:
    """The audit records one transaction appended, written together just before it commits;
    and the answers to delivered actions it gave (kiosk.server.idempotency), written with them:
    one statement for a batch's answers instead of one an action."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows = rows or []
        self.answers: dict[tuple[int, str], dict[str, Any]] = {}
        """Idempotency rows by (station id, key), in the order they were given."""
        self.holds_answers = False
        """Set by GroupCommit, which runs the transaction again when one of its answers meets
        one that another process stored: elsewhere an answer is stored at once."""
        self.without_savepoints = False
        """Set by GroupCommit for its first run: nothing is expected to fail, so no savepoint
        is taken, and whatever fails inside one raises RunAgainCarefully (see `savepoint`)."""

    def mark(self) -> tuple[int, int]:
        return len(self.rows), len(self.answers)

    def give_back(self, mark: tuple[int, int]) -> None:
        """Forget what was added since `mark`: its savepoint rolled back."""
        del self.rows[mark[0] :]
        for key in list(self.answers)[mark[1] :]:
            del self.answers[key]

    def write(self, conn: Connection) -> None:
        """Store the answers, then extend the chain: the head row is locked first (FOR UPDATE on
        PostgreSQL, the write lock on SQLite), so concurrent server processes extend it strictly
        one after another. An answer another process stored meanwhile for the same key raises
        IntegrityError here, and the whole transaction is rolled back (GroupCommit runs it again,
        and then finds that answer)."""
        if self.answers:
            conn.execute(_REMEMBER, list(self.answers.values()))
            self.answers = {}
        if not self.rows:
            return
        key = conn.info[AUDIT_KEY]
        head = conn.execute(_HEAD_FOR_UPDATE).one()
        seq, prev = int(head.seq), bytes(head.hash)
        records = []
        for row in self.rows:
            seq += 1
            sealed = {**row, "seq": seq}
            digest = record_hash(prev, sealed)
            records.append(
                {**sealed, "prev_hash": prev, "hash": digest, "mac": record_mac(key, digest)}
            )
            prev = digest
        conn.execute(_APPEND, records)
        conn.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": prev})
        self.rows = []


# Built once: they run in every transaction that writes.
_HEAD_FOR_UPDATE = (
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_APPEND = audit_log.insert()
_REMEMBER = idempotency.insert()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)


def all_or_nothing(conn: Connection) -> bool:
    """Whether this transaction runs without savepoints: it commits whole or not at all, so
    what it has read and locked stays read and locked until it ends."""
    pending = conn.info.get(PENDING_AUDIT)
    return pending is not None and pending.without_savepoints


class RunAgainCarefully(BaseException):
    """Something failed where a savepoint was skipped (Pending.without_savepoints): the changes
    before it cannot be given back alone, so the whole transaction is rolled back and run again
    with every savepoint. A BaseException, so that no handler meant for the failure itself (a
    refusal turned into an answer) catches it on the way."""


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint whose audit records and answers (Pending) are given back with its changes
    when it rolls back; or, in a transaction run without savepoints, none at all: a delivered
    batch almost never holds a refusal, and its savepoints were a third of its statements on
    PostgreSQL (one in five on SQLite, with the RELEASE).

    Issued as plain SQL: in a batch run with them every action runs on one, and SQLAlchemy's nested
    transaction cost five times the statements' own work (0.16 ms an action of 0.75). On
    PostgreSQL it is never released: the commit ends them all, and a RELEASE was one more round
    trip per action (6 % of a batch). SQLite's RELEASE is a call in the process, and savepoints
    left open there slow every later write (8 % of a batch), so there it is released. Savepoints
    are named by how deeply they nest (a batch's, inside it an action's): ROLLBACK TO a name goes
    back to the latest savepoint of that name, which is always this one, as SQL defines."""
    pending = conn.info.get(PENDING_AUDIT)
    if pending is not None and pending.without_savepoints:
        try:
            yield
        except BaseException as failure:
            raise RunAgainCarefully from failure
        return
    mark = pending.mark() if pending is not None else (0, 0)
    depth = conn.info.get(_SAVEPOINT_DEPTH, 0)
    name = f"kiosk_{depth}"
    released = conn.dialect.name == "sqlite"
    conn.exec_driver_sql(f"SAVEPOINT {name}")
    conn.info[_SAVEPOINT_DEPTH] = depth + 1
    try:
        yield
    except BaseException:
        if pending is not None:
            pending.give_back(mark)
        if not conn.invalidated:  # a lost connection has no savepoint to go back to
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    finally:
        conn.info[_SAVEPOINT_DEPTH] = depth
        if released and not conn.invalidated:
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")


_SAVEPOINT_DEPTH = "kiosk.savepoint_depth"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    first_bad: int | None = None
    reason: str = ""
    about_rows: bool = False
    """The chain holds, but a table disagrees with it: `reason` names the row."""

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.records} records"
        if self.about_rows:
            return f"broken: {self.reason}"
        return f"broken at record {self.first_bad}: {self.reason}"


@dataclass(frozen=True)
class Keys:
    """Derived from the plant secret: without them, only the bare chain can be checked."""

    record: bytes
    checkpoint: bytes


@dataclass(frozen=True)
class Witness:
    """A checkpoint kept outside the database, and where it was read from (for the message)."""

    where: str
    checkpoint: Checkpoint


def record_mac(key: bytes, digest: bytes) -> bytes:
    return hmac.new(key, digest, hashlib.sha256).digest()


def checkpoint_mac(key: bytes, seq: int, digest: bytes) -> str:
    return hmac.new(key, seq.to_bytes(8, "big") + digest, hashlib.sha256).hexdigest()


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        seq=row.seq, hash=bytes(row.hash).hex(), mac=row.mac, server_time=row.server_time
    )


def seal(conn: Connection, key: bytes, now: datetime) -> Checkpoint | None:
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
    return Checkpoint(seq=head.seq, hash=bytes(head.hash).hex(), mac=mac, server_time=now)


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(
        select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
    ).first()
    return None if row is None else _checkpoint(row)


def verify(
    conn: Connection,
    keys: Keys | None = None,
    witnesses: Sequence[Witness] = (),
    *,
    files: FileStore | None = None,
) -> Verdict:
    """Walk the whole chain in sequence order and report the first record that does not fit,
    then re-derive the rows that matter from it (kiosk.server.records).

    With the keys, every record's seal and every signed checkpoint must match: that catches a
    chain rewritten from some record on by someone who recomputed all the hashes after it. Each
    witness (a checkpoint kept outside the database) must be genuine and still in the chain:
    that catches a chain cut back to an earlier record, with the checkpoints after it deleted.
    With the plant's `files`, every kept file a record names must still have its hash.
    With `files`, each photo or file a value names must still hash to that value's SHA-256.
    """
    marks, problem = _checkpoints(conn, keys)
    if problem is not None:
        return problem
    watched = {w.checkpoint.seq for w in witnesses}
    count, hashes, problem = _walk(conn, keys, marks, watched)
    if problem is not None:
        return problem
    problem = _witnessed(conn, keys, witnesses, count, hashes)
    if problem is not None:
        return problem
    from kiosk.server import records  # the rows' module builds on this one

    findings = records.check(conn, files)
    if files is not None:  # every photo or file on record still in the store, unchanged
        from kiosk.server.evidence import file_findings

        findings += file_findings(conn, files)
    if findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        return Verdict(False, count, first.seq or None, first.text + more, about_rows=True)
    return Verdict(True, count)


def _checkpoints(conn: Connection, keys: Keys | None) -> tuple[dict[int, bytes], Verdict | None]:
    marks: dict[int, bytes] = {}
    if keys is None:
        return marks, None
    for cp in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)):
        if not hmac.compare_digest(cp.mac, checkpoint_mac(keys.checkpoint, cp.seq, bytes(cp.hash))):
            return marks, Verdict(False, 0, cp.seq, "its signed checkpoint is not genuine")
        marks[cp.seq] = bytes(cp.hash)
    return marks, None


def _walk(
    conn: Connection, keys: Keys | None, marks: dict[int, bytes], watched: set[int]
) -> tuple[int, dict[int, bytes], Verdict | None]:
    prev, expected, count = GENESIS, 1, 0
    hashes: dict[int, bytes] = {}
    for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings():
        bad = _misfit(row, expected, prev, keys, marks)
        if bad is not None:
            return count, hashes, Verdict(False, count, bad[0], bad[1])
        prev, expected, count = bytes(row["hash"]), expected + 1, count + 1
        if row["seq"] in watched:
            hashes[row["seq"]] = prev
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != count or bytes(head.hash) != prev:
        return (
            count,
            hashes,
            Verdict(
                False, count, count + 1, f"the chain ends at {count}, its head says {head.seq}"
            ),
        )
    if marks and max(marks) > count:
        return (
            count,
            hashes,
            Verdict(
                False, count, count + 1, f"a signed checkpoint vouches for record {max(marks)}"
            ),
        )
    return count, hashes, None


def _misfit(
    row: Any, expected: int, prev: bytes, keys: Keys | None, marks: dict[int, bytes]
) -> tuple[int, str] | None:
    if row["seq"] != expected:
        return expected, f"record {expected} is missing or out of order"
    if bytes(row["prev_hash"]) != prev:
        return row["seq"], "does not follow the record before it"
    digest = record_hash(prev, dict(row))
    if digest != bytes(row["hash"]):
        return row["seq"], "its content was changed after it was written"
    if keys is not None and not hmac.compare_digest(
        bytes(row["mac"]), record_mac(keys.record, digest)
    ):
        return row["seq"], "its seal does not match: the chain was rewritten from this record on"
    if marks.get(row["seq"], digest) != digest:
        return row["seq"], "the chain differs from its signed checkpoint"
    return None


def _witnessed(
    conn: Connection,
    keys: Keys | None,
    witnesses: Sequence[Witness],
    count: int,
    hashes: dict[int, bytes],
) -> Verdict | None:
    kept = set(conn.execute(select(audit_checkpoints.c.seq)).scalars())
    for w in sorted(witnesses, key=lambda w: w.checkpoint.seq):
        cp = w.checkpoint
        if keys is not None and not hmac.compare_digest(
            cp.mac, checkpoint_mac(keys.checkpoint, cp.seq, bytes.fromhex(cp.hash))
        ):
            return Verdict(False, count, cp.seq, f"the checkpoint in {w.where} is not genuine")
        if cp.seq > count:
            return Verdict(
                False,
                count,
                count + 1,
                f"the chain ends at {count}, but {w.where} witnessed record {cp.seq}: "
                "records were cut off the end",
            )
        if hashes.get(cp.seq) != bytes.fromhex(cp.hash):
            return Verdict(
                False,
                count,
                cp.seq,
                f"the chain differs from the checkpoint witnessed in {w.where}: it was "
                "rewritten at or before this record",
            )
        if cp.seq not in kept:
            return Verdict(
                False,
                count,
                cp.seq,
                f"the signed checkpoint witnessed in {w.where} was deleted from the database",
            )
    return None


# --- witness files ------------------------------------------------------------------------------------


def witness_path(secret_file: Path) -> Path:
    """The server's own witness: beside the plant secret, outside the database."""
    return secret_file.with_name(secret_file.name + ".witness.jsonl")


def append_witness(path: Path, checkpoint: Checkpoint) -> None:
    """One line per checkpoint, synced: it is there even if the database is later rewritten."""
    line = checkpoint.model_dump_json() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class WitnessUnreadable(Exception):
    pass


def read_witnesses(path: Path) -> list[Witness]:
    """Every checkpoint in a witness file (JSON lines, as written by the server or a station)."""
    found = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise WitnessUnreadable(f"{path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(
                Witness(f"{path.name} line {number}", Checkpoint.model_validate_json(line))
            )
        except ValidationError:
            raise WitnessUnreadable(f"{path} line {number} is not a checkpoint") from None
    return found
