"""Engineering changes mid-job: a new revision of a routing's steps, issued with a change number.

The document (`RevisionDocument`, example in examples/revise-ecn-0042.json) names a work order,
whose travelers each carry their own copy of its routing, and gives each changed step whole, in
the import's own step model (`erp.StepSpec`): whatever a step holds there, a revision carries.
For each traveler, a step that is
- not yet started takes the new revision silently (recorded as a step revision);
- in work (started, not signed) takes it as a redline: its operator acknowledges the change
  (kiosk.server.redlines) before the step can be worked on or signed (rules.ensure_redlines_…);
- signed keeps the revision it was done at: its signatures sign that text.
A step whose content is already the revision's is left alone. The same change number again with
the same document changes nothing; with another document it is refused. Anything that does not
fit is refused whole, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from kiosk.rules import Refusal
from kiosk.server import audit, documents, erp, integration, records
from kiosk.server import schema as t
from kiosk.server.store import Store
from kiosk.wire import RevisionResult, StepStatus


class RevisionDocument(BaseModel):
    """An engineering change: which routing, which steps (whole, as the import gives them), why."""

    model_config = ConfigDict(extra="forbid")

    change: str = Field(min_length=1, max_length=40, pattern=r"^\S+$")
    """The change number, as ECN-0042 (no spaces)."""
    reason: str = Field(min_length=3, max_length=2000, pattern=r"\S")
    work_order: str = Field(min_length=1, max_length=40)
    """The work order whose routing changes (each of its travelers has its own copy)."""
    steps: list[erp.StepSpec] = Field(min_length=1, max_length=500)
    """Each changed step as it now reads, numbered as on the routing, at its new revision."""


def read_revision(path: Path) -> RevisionDocument:
    return RevisionDocument.model_validate_json(path.read_bytes())


def document_sha256(doc: RevisionDocument) -> str:
    return hashlib.sha256(audit.canonical(doc.model_dump(mode="json")).encode()).hexdigest()


@dataclass
class Counts:
    steps_changed: int = 0
    redlines: int = 0
    kept: int = 0
    """Signed steps that keep the revision they were done at."""
    steps: list[str] = field(default_factory=list)
    """Each traveler's step and what the change did to it, in words."""

    def as_dict(self) -> dict[str, int]:
        return {"steps_changed": self.steps_changed, "redlines": self.redlines, "kept": self.kept}

    def summary(self) -> str:
        return json.dumps({**self.as_dict(), "steps": self.steps})


def issue(
    store: Store, doc: RevisionDocument, now: datetime, account: str | None = None
) -> RevisionResult:
    """Issue the change once, in one transaction: refused whole, or applied whole."""
    found = integration.misfits(doc)
    if found:
        raise _invalid(doc, found[0])
    digest = document_sha256(doc)
    try:
        with store.begin() as conn:
            earlier = _earlier(conn, doc, digest)
            if earlier is not None:
                return earlier
            counts = apply(conn, doc, digest, now, account)
    except IntegrityError:  # another server process issued the same change number meanwhile
        with store.read() as conn:
            earlier = _earlier(conn, doc, digest)
        if earlier is None:
            raise
        return earlier
    return _result(True, doc.change, digest, now, counts.as_dict(), counts.steps)


def _earlier(conn: Connection, doc: RevisionDocument, digest: str) -> RevisionResult | None:
    row = conn.execute(
        select(t.engineering_changes).where(t.engineering_changes.c.number == doc.change)
    ).one_or_none()
    if row is None:
        return None
    if row.sha256 != digest:
        raise Refusal(
            "change_conflict",
            f"{doc.change} was already issued at {row.issued_at:%Y-%m-%d %H:%M} UTC with other "
            "content: nothing changed. Issue the new content under a new change number.",
            409,
        )
    said = json.loads(row.summary)
    steps = said.pop("steps", [])
    return _result(False, row.number, digest, row.issued_at, said, steps)


def _result(
    issued: bool,
    change: str,
    digest: str,
    at: datetime,
    counts: dict[str, int],
    steps: list[str],
) -> RevisionResult:
    said = (
        f"{_n(counts['steps_changed'], 'step')} at the new revision, "
        f"{_n(counts['redlines'], 'redline')} to acknowledge, "
        f"{_n(counts['kept'], 'signed step')} keeping the revision done at"
    )
    message = (
        f"{change} issued: {said}."
        if issued
        else f"{change} was already issued at {at:%Y-%m-%d %H:%M:%S} UTC ({said}): nothing changed."
    )
    return RevisionResult(
        issued=issued,
        change=change,
        sha256=digest,
        issued_at=at,
        counts=counts,
        steps=tuple(steps),
        message=message,
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- applying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One traveler's step and what the change does to it."""

    traveler_id: int
    step: Any  # the step's row
    items: list[Any]  # its data items' rows, in order
    old: erp.StepSpec
    new: erp.StepSpec
    redline: bool


def apply(
    conn: Connection, doc: RevisionDocument, digest: str, now: datetime, account: str | None
) -> Counts:
    """Check everything, then write: the change, each step's new content, its revision row."""
    wo_id = _work_order(conn, doc)
    plan, counts = _plan(conn, doc, wo_id)
    row = {
        "number": doc.change,
        "work_order_id": wo_id,
        "reason": doc.reason.strip(),
        "sha256": digest,
        "issued_by": account,
        "issued_at": now,
        "summary": counts.summary(),
    }
    change_id = _insert(conn, "issue_change", "ecn", row, now)
    for p in plan:
        _write_step(conn, p)
        revision = {
            "change_id": change_id,
            "traveler_id": p.traveler_id,
            "step_id": p.step.id,
            "old_revision": p.old.revision,
            "new_revision": p.new.revision,
            "changes": json.dumps(differences(p.old, p.new)),
            "content": audit.canonical(p.new.model_dump(mode="json")),
            "redline": p.redline,
            "issued_at": now,
            "acknowledged_by": None,
            "acknowledged_at": None,
            "station_id": None,
        }
        _insert(conn, "revise_step", "revision", revision, now)
    return counts


def _insert(conn: Connection, action: str, kind: str, values: dict[str, Any], now: datetime) -> int:
    """A tracked row, with all its columns in the audit chain (no person: an ERP or the CLI)."""
    table = records.TRACKED[kind]
    row_id = int(conn.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())
    audit.append(
        conn,
        action=action,
        entity=f"{kind}:{row_id}",
        actor=None,
        station=None,
        new=records.state(values),
        now=now,
    )
    return row_id


def _work_order(conn: Connection, doc: RevisionDocument) -> int:
    found = conn.execute(
        select(t.work_orders.c.id).where(t.work_orders.c.number == doc.work_order)
    ).scalar()
    if found is None:
        raise _invalid(doc, f"there is no work order {doc.work_order}, so no routing to revise", 404)
    return int(found)


def _invalid(doc: RevisionDocument, detail: str, status: int = 422) -> Refusal:
    return Refusal("revision_invalid", f"{doc.change}: {detail}; nothing changed.", status)


def _plan(conn: Connection, doc: RevisionDocument, wo_id: int) -> tuple[list[Planned], Counts]:
    numbers = [s.number for s in doc.steps]
    twice = next((n for n in numbers if numbers.count(n) > 1), None)
    if twice is not None:
        raise _invalid(doc, f"step {twice} is given twice")
    steps = conn.execute(
        select(t.steps, t.travelers.c.number.label("traveler"))
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .where(t.travelers.c.work_order_id == wo_id, t.steps.c.number.in_(numbers))
        .order_by(t.steps.c.traveler_id, t.steps.c.seq)
    ).all()
    missing = sorted(set(numbers) - {s.number for s in steps})
    if missing:
        raise _invalid(doc, f"the routing of {doc.work_order} has no step {', '.join(missing)}")
    items = _items_of(conn, [s.id for s in steps])
    signed = _signed(conn, [s.id for s in steps])
    wanted = {s.number: s for s in doc.steps}
    for spec in doc.steps:  # a drawing at a revision the plant does not have: refused whole
        try:
            documents.ensure_known(conn, spec.documents)
        except Refusal as refused:
            raise _invalid(doc, f"step {spec.number}: {refused.detail.rstrip('.')}") from None
    plan, counts = [], Counts()
    for step in steps:
        new, old = wanted[step.number], stored_spec(step, items.get(step.id, []))
        if same(old, new):
            continue
        where = f"step {step.number} of {step.traveler}"
        if step.status == StepStatus.COMPLETE.value or step.id in signed:
            counts.kept += 1
            counts.steps.append(f"{step.traveler} step {step.number}: signed, keeps rev {old.revision}")
            continue
        if new.revision == old.revision:
            raise _invalid(doc, f"{where} changes but keeps revision {old.revision}: a changed "
                           "step needs a new revision")  # fmt: skip
        _ensure_items_removable(conn, doc, where, items.get(step.id, []), new)
        redline = step.status != StepStatus.NOT_STARTED.value
        plan.append(Planned(step.traveler_id, step, items.get(step.id, []), old, new, redline))
        counts.redlines += redline
        counts.steps_changed += not redline
        took = "a redline to acknowledge (in work)" if redline else "not started"
        counts.steps.append(
            f"{step.traveler} step {step.number}: rev {old.revision} -> {new.revision}, {took}"
        )
    return plan, counts


def _items_of(conn: Connection, step_ids: list[int]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {}
    if step_ids:
        rows = conn.execute(
            select(t.data_items)
            .where(t.data_items.c.step_id.in_(step_ids))
            .order_by(t.data_items.c.seq)
        )
        for r in rows:
            found.setdefault(r.step_id, []).append(r)
    return found


def _signed(conn: Connection, step_ids: list[int]) -> set[int]:
    """Steps with any signature (an inspection step signed as performed waits for its buy-off:
    its performer signed this text, so it keeps it)."""
    if not step_ids:
        return set()
    sig = t.signatures.c
    return set(
        conn.execute(
            select(sig.subject_id).where(sig.subject == "step", sig.subject_id.in_(step_ids))
        ).scalars()
    )


def stored_spec(step: Any, items: list[Any]) -> erp.StepSpec:
    """The step as it stands, in the import's step model: every field of it that is a column
    (generic, so a field added to the model and its table is compared and carried too)."""
    row = step._mapping
    fields = {name: row[name] for name in erp.StepSpec.model_fields if name in row}
    # The row keeps its document references as canonical JSON; the model, as references.
    fields["documents"] = [
        {"number": n, "revision": r} for n, r in documents.refs_of(row.get("documents"))
    ]
    fields["items"] = [
        {name: i._mapping[name] for name in erp.ItemSpec.model_fields if name in i._mapping}
        for i in items
    ]
    return erp.StepSpec.model_validate(fields)


def same(old: erp.StepSpec, new: erp.StepSpec) -> bool:
    return old.model_dump(mode="json") == new.model_dump(mode="json")


def _item_key(item: Any) -> tuple[str, str]:
    """An item keeps its identity (and its values) across revisions by label and kind."""
    kind = item.kind if isinstance(item.kind, str) else item.kind.value
    return item.label, kind


def _ensure_items_removable(
    conn: Connection, doc: RevisionDocument, where: str, items: list[Any], new: erp.StepSpec
) -> None:
    """An item the revision drops goes only if nothing was recorded or raised on it."""
    kept = {_item_key(i) for i in new.items}
    for item in items:
        if _item_key(item) in kept:
            continue
        used = conn.execute(
            select(
                exists().where(t.recorded_values.c.item_id == item.id)
                | exists().where(t.ncrs.c.item_id == item.id)
            )
        ).scalar()
        if used:
            raise _invalid(doc, f"{where}: item {item.label!r} has values or an NCR on record "
                           "and cannot be removed")  # fmt: skip


def _write_step(conn: Connection, p: Planned) -> None:
    """The step's new content in place (its id, status, values and labour stay): every field
    of the step model that is a column; items matched by label and kind, updated in place."""
    columns = {
        k: v
        for k, v in p.new.model_dump(exclude={"items", "number", "documents"}).items()
        if k in t.steps.c
    }
    columns["documents"] = documents.refs_json(p.new.documents)
    conn.execute(update(t.steps).where(t.steps.c.id == p.step.id).values(**columns))
    old = {_item_key(i): i for i in p.items}
    for seq, item in enumerate(p.new.items, 1):
        values = {k: v for k, v in item.model_dump().items() if k in t.data_items.c}
        found = old.pop(_item_key(item), None)
        if found is None:
            conn.execute(insert(t.data_items).values(step_id=p.step.id, seq=seq, **values))
        else:
            di = t.data_items
            conn.execute(update(di).where(di.c.id == found.id).values(seq=seq, **values))
    if old:
        ids = [i.id for i in old.values()]
        conn.execute(delete(t.data_items).where(t.data_items.c.id.in_(ids)))


# --- what changed, in words ------------------------------------------------------------------------


def differences(old: erp.StepSpec, new: erp.StepSpec) -> list[str]:
    """Every field that differs, generically (the revision itself is said apart, old -> new)."""
    lines = _fields(old.model_dump(mode="json"), new.model_dump(mode="json"), {"items", "revision"})
    before = {_item_key(i): i.model_dump(mode="json") for i in old.items}
    after = {_item_key(i): i.model_dump(mode="json") for i in new.items}
    for key, item in after.items():
        if key not in before:
            lines.append(f"item {key[0]} added ({key[1]})")
        else:
            said = _fields(before[key], item, {"label", "kind"})
            if said:
                lines.append(f"item {key[0]}: " + "; ".join(said))
    lines += [f"item {key[0]} removed" for key in before if key not in after]
    if not lines and list(before) != list(after):
        lines.append("items reordered")
    return lines


def _fields(old: dict[str, Any], new: dict[str, Any], skip: set[str]) -> list[str]:
    lines = []
    for name in new:
        if name in skip or old.get(name) == new[name]:
            continue
        was, now = _said(old.get(name)), _said(new[name])
        if len(was) + len(now) > 60:
            lines.append(f"{name} now: {now[:200]}")
        else:
            lines.append(f"{name} {was} -> {now}")
    return lines


def _said(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- re-derived by `kiosk audit verify` -------------------------------------------------------------


def content_findings(
    conn: Connection, expected: dict[tuple[str, int], records.Expected]
) -> list[records.Finding]:
    """Each revised step must read as the last revision it took (whose content is in the audit
    chain with its revision row): a step edited in place after a change is named."""
    latest: dict[int, Any] = {}
    for r in conn.execute(select(t.step_revisions).order_by(t.step_revisions.c.id)):
        latest[r.step_id] = r
    if not latest:
        return []
    steps = conn.execute(
        select(t.steps, t.travelers.c.number.label("traveler"))
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .where(t.steps.c.id.in_(list(latest)))
    ).all()
    items = _items_of(conn, list(latest))
    found = []
    for step in steps:
        rev = latest[step.id]
        now = _as_stored(stored_spec(step, items.get(step.id, [])).model_dump(mode="json"))
        wanted = _as_stored(json.loads(rev.content))
        if now != wanted:
            what = next((k for k in wanted if now.get(k) != wanted[k]), "content")
            seq = expected.get(("revision", rev.id), records.Expected()).created
            found.append(
                records.Finding(
                    seq,
                    f"step {step.number} of {step.traveler}: its {what} is not what step "
                    f"revision {rev.id} (rev {rev.new_revision}) made it: changed in place since",
                )
            )
    return found


def _as_stored(spec: dict[str, Any]) -> dict[str, Any]:
    """Only what the step's own columns and its items' keep (another table's part of a step,
    if any, is that table's to check)."""
    kept = {k: v for k, v in spec.items() if k in t.steps.c}
    kept["items"] = [
        {k: v for k, v in item.items() if k in t.data_items.c} for item in spec.get("items", [])
    ]
    return kept
