"""The rows that matter, re-derived from the audit chain.

Every value, signature, consumed lot, tool use, NCR and hold is written together with an audit
record holding all of its columns (later changes to it: the changed columns). Replaying the chain
gives what each row must be; `check` compares that with the tables and names the first row that
disagrees, that is missing, or that was inserted with no record. It also recomputes each
signature's content hash from the data as it now stands, so a signed value, a step's text or a
disposition changed in place (even with its audit records rewritten) no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select

from kiosk.server import audit
from kiosk.server import schema as t
from kiosk.wire import Step, Traveler

if TYPE_CHECKING:
    from kiosk.server.files import FileStore

TRACKED: dict[str, Table] = {
    "value": t.recorded_values,
    "signature": t.signatures,
    "consumption": t.consumption,
    "tool_use": t.tool_uses,
    "ncr": t.ncrs,
    "hold": t.holds,
    "certification": t.certifications,
    "labour": t.labour_intervals,
    "andon": t.andon_requests,
    "ecn": t.engineering_changes,
    "revision": t.step_revisions,
    "asset": t.assets,
    "asset_task": t.asset_tasks,
    "deviation": t.deviations,
    "document": t.documents,
}
NOUNS = {
    "value": "recorded value",
    "signature": "signature",
    "consumption": "material consumption",
    "tool_use": "tool use",
    "ncr": "NCR",
    "hold": "hold",
    "certification": "certification",
    "labour": "labour interval",
    "andon": "help or stop request",
    "ecn": "engineering change",
    "revision": "step revision",
    "asset": "asset",
    "asset_task": "maintenance task",
    "deviation": "deviation",
    "document": "document",
}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return audit.micros(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def state(values: dict[str, Any]) -> dict[str, Any]:
    """A row's columns as the audit trail keeps them: times as UTC microseconds."""
    return {column: _plain(v) for column, v in values.items() if column != "id"}


@dataclass
class Expected:
    """What one row must be, according to the chain."""

    columns: dict[str, Any] = field(default_factory=dict)
    created: int = 0
    """Sequence number of the record that wrote the row."""
    last: int = 0
    """Sequence number of the record that last changed it."""


@dataclass(frozen=True)
class Finding:
    seq: int
    """Where in the chain the disagreement starts (0: nowhere, the row has no record)."""
    text: str


def replay(conn: Connection) -> dict[tuple[str, int], Expected]:
    expected: dict[tuple[str, int], Expected] = {}
    rows = conn.execute(
        select(t.audit_log.c.seq, t.audit_log.c.entity, t.audit_log.c.new).order_by(
            t.audit_log.c.seq
        )
    )
    for seq, entity, new in rows:
        kind, _, ident = entity.partition(":")
        if kind not in TRACKED or not ident.isdigit() or new is None:
            continue
        state = json.loads(new)
        if not isinstance(state, dict):  # not a row's columns: a forged record, which the
            continue  # chain's MACs and checkpoints name
        row = expected.setdefault((kind, int(ident)), Expected(created=seq))
        row.columns.update(state)
        row.last = seq
    return expected


def check(conn: Connection, files: FileStore | None = None) -> list[Finding]:
    """Every disagreement between the tables and the chain, earliest in the chain first; with
    the plant's `files`, also each document whose file is gone or no longer has its hash."""
    expected = replay(conn)
    unmatched = dict(expected)
    findings: list[Finding] = []
    for kind, table in TRACKED.items():
        for row in conn.execute(select(table).order_by(table.c.id)).mappings():
            findings.extend(_compare(kind, row, unmatched.pop((kind, int(row["id"])), None)))
    for (kind, ident), gone in unmatched.items():
        findings.append(
            Finding(
                gone.created,
                f"{NOUNS[kind]} {ident}, written by audit record {gone.created}, is missing "
                "from the database: it was deleted",
            )
        )
    findings.extend(_signature_hashes(conn, expected))
    from kiosk.server import revise  # builds on this module's rows

    findings.extend(revise.content_findings(conn, expected))
    if files is not None:
        from kiosk.server import documents

        findings.extend(documents.file_findings(conn, files, expected))
    return sorted(findings, key=lambda f: f.seq)


def _compare(kind: str, row: Any, want: Expected | None) -> list[Finding]:
    noun = f"{NOUNS[kind]} {row['id']}"
    if want is None:
        return [
            Finding(
                0, f"{noun} is in the database but not in the audit trail: it was inserted there"
            )
        ]
    have = state(dict(row))
    for column in sorted(set(have) | set(want.columns)):
        if audit.canonical(have.get(column)) != audit.canonical(want.columns.get(column)):
            return [
                Finding(
                    want.last,
                    f"{noun}: {column} is {_show(have.get(column))} in the database but "
                    f"{_show(want.columns.get(column))} in audit record {want.last}",
                )
            ]
    return []


def _show(value: Any) -> str:
    return "empty" if value is None else repr(value)


# --- signatures' content hashes --------------------------------------------------------------------


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(audit.canonical(content).encode()).hexdigest()


@dataclass(frozen=True)
class StepContent:
    """Exactly what a step's signer saw: the step's text at its revision and every value."""

    traveler: str
    step: str
    revision: str
    instructions: str
    values: dict[str, str | None]
    """Item label → the value on record when signing (None where nothing was)."""
    documents: tuple[str, ...] = ()
    """"NUMBER/REVISION/SHA-256" of each document the step shows: the drawing signed against."""

    @classmethod
    def of(cls, trav: Traveler, step: Step) -> StepContent:
        values = {i.label: i.latest.value if i.latest else None for i in step.items}
        docs = tuple(f"{d.number}/{d.revision}/{d.sha256}" for d in step.documents)
        return cls(trav.number, step.number, step.revision, step.instructions, values, docs)

    def digest(self, meaning: str, signer_id: int, time: datetime) -> str:
        """SHA-256 of the content, meaning, signer and moment: the signature's content hash."""
        content = {
            "traveler": self.traveler,
            "step": self.step,
            "revision": self.revision,
            "instructions": self.instructions,
            "values": self.values,
            "meaning": meaning,
            "signer": signer_id,
            "time": audit.micros(time),
        }
        if self.documents:  # a step without documents hashes as before documents existed
            content["documents"] = list(self.documents)
        return _digest(content)


def hold_content_hash(hold_id: int, reason: str) -> str:
    return _digest({"hold": hold_id, "reason": reason})


def disposition_content_hash(
    ncr_number: str, disposition: str, *, rationale: str = "", instructions: str = ""
) -> str:
    """What quality (and the second approver) sign: the disposition, why, and what to do.
    Without a rationale or instructions the content is as release 2's first signatures had it."""
    content = {"ncr": ncr_number, "disposition": disposition}
    if rationale or instructions:
        content |= {"rationale": rationale, "instructions": instructions}
    return _digest(content)


def void_content_hash(signature_id: int, content_hash: str, reason: str) -> str:
    """What quality signs to void a signature: which one, what it signed, and why."""
    return _digest({"void": signature_id, "signed": content_hash, "reason": reason})


DEVIATION_CONTENT = ("number", "part_number", "travelers", "steps", "item", "lower", "upper",
                     "substitute", "reason", "units", "until")  # fmt: skip


def _deviation_digest(row: Any) -> str:
    """What quality (and the second approver) sign: the whole deviation, scope and reach."""
    return _digest({column: _plain(getattr(row, column)) for column in DEVIATION_CONTENT})


def deviation_content_hash(conn: Connection, deviation_id: int) -> str:
    return _deviation_digest(
        conn.execute(select(t.deviations).where(t.deviations.c.id == deviation_id)).one()
    )


def _signature_hashes(conn: Connection, expected: dict[tuple[str, int], Expected]) -> list[Finding]:
    steps = _steps(conn)
    values = _values_by_item(conn, expected)
    holds = {r.id: r for r in conn.execute(select(t.holds))}
    ncrs = {r.id: r for r in conn.execute(select(t.ncrs))}
    voided = {r.id: r for r in conn.execute(select(t.signatures).order_by(t.signatures.c.id))}
    devs = {r.id: r for r in conn.execute(select(t.deviations))}
    found = []
    for sig in voided.values():
        signed_at = expected.get(("signature", sig.id), Expected()).created
        if sig.subject == "step" and sig.subject_id in steps:
            content = steps[sig.subject_id].content(values, signed_at)
            digest = content.digest(sig.meaning, sig.user_id, sig.server_time)
            what = f"{content.traveler} step {content.step}"
        elif sig.subject == "hold" and sig.subject_id in holds:
            hold = holds[sig.subject_id]
            digest, what = hold_content_hash(hold.id, hold.reason), f"hold {hold.id}"
        elif sig.subject == "ncr" and sig.subject_id in ncrs:
            ncr = ncrs[sig.subject_id]
            digest = disposition_content_hash(
                ncr.number,
                ncr.disposition or "",
                rationale=ncr.rationale or "",
                instructions=ncr.instructions or "",
            )
            what = f"the disposition of {ncr.number}"
        elif sig.subject == "signature" and sig.subject_id in voided:
            gone = voided[sig.subject_id]  # a void: the signature voided, and why
            digest = void_content_hash(gone.id, gone.content_hash, gone.void_reason or "")
            what = f"the void of signature {gone.id}"
        elif sig.subject == "deviation" and sig.subject_id in devs:
            dev = devs[sig.subject_id]
            digest, what = _deviation_digest(dev), f"deviation {dev.number}"
        else:
            found.append(
                Finding(signed_at, f"signature {sig.id} signs a {sig.subject} that does not exist")
            )
            continue
        if digest != sig.content_hash:
            found.append(
                Finding(
                    signed_at,
                    f"signature {sig.id} ({sig.printed_name}, {sig.meaning}) no longer matches "
                    f"{what}: what was signed has been changed since",
                )
            )
    return found


@dataclass(frozen=True)
class _Step:
    traveler: str
    number: str
    revision: str
    instructions: str
    items: list[tuple[int, str]]  # (item id, label) in order
    documents: tuple[str, ...] = ()

    def content(self, values: dict[int, list[tuple[int, int, str]]], before: int) -> StepContent:
        latest: dict[str, str | None] = {}
        for item_id, label in self.items:
            earlier = [(vid, v) for seq, vid, v in values.get(item_id, []) if seq < before]
            latest[label] = max(earlier)[1] if earlier else None
        return StepContent(
            self.traveler, self.number, self.revision, self.instructions, latest, self.documents
        )


def _steps(conn: Connection) -> dict[int, _Step]:
    items: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for item in conn.execute(select(t.data_items).order_by(t.data_items.c.seq)):
        items[item.step_id].append((item.id, item.label))
    rows = conn.execute(
        select(t.steps, t.travelers.c.number.label("traveler")).join(
            t.travelers, t.travelers.c.id == t.steps.c.traveler_id
        )
    )
    from kiosk.server import documents  # it builds on this module

    hashes = documents.hashes(conn)
    return {
        r.id: _Step(
            r.traveler, r.number, r.revision, r.instructions, items[r.id],
            documents.content_of(r.documents, hashes),
        )  # fmt: skip
        for r in rows
    }


def _values_by_item(
    conn: Connection, expected: dict[tuple[str, int], Expected]
) -> dict[int, list[tuple[int, int, str]]]:
    """item id → (seq of the record that wrote it, value id, value) for every recorded value."""
    found: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for v in conn.execute(select(t.recorded_values)):
        seq = expected.get(("value", v.id), Expected()).created
        found[v.item_id].append((seq, v.id, v.value))
    return found
