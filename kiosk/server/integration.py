"""Service accounts of the plant's ERP, MES and QMS, and the import they may send.

A service account is a system, not a person (TRUST-MODEL.md): its key proves "this request comes
from the system named ERP" and nothing more. It is not a station token, so no station route takes
it, and nothing it does names a person: what it imports is recorded with no actor. Its key is
shown once; the database keeps only an HMAC of it under a key derived from the plant secret, so
a copy of the database alone cannot even test a guessed key.

Each integration route needs exactly one scope (`require`), checked by the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Integer, String, insert, select, update
from sqlalchemy.exc import IntegrityError

from kiosk.rules import Refusal
from kiosk.server import audit, erp
from kiosk.server import schema as t
from kiosk.server.security import PlantSecret
from kiosk.server.store import Store
from kiosk.wire import MAX_ID, ImportResult, Scope, ServiceAccount

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
KEY_PREFIX = "kiosk_sa_"
"""Keys start with this, so a leaked one is recognisable (secret scanners, log redaction)."""


@dataclass(frozen=True)
class AccountRef:
    id: int
    name: str
    scopes: frozenset[Scope]


# --- keys and scopes ----------------------------------------------------------------------------


def key_hmac(secret: PlantSecret, key: str) -> str:
    derived = hmac.new(secret.audit_key(), b"service-account-key", hashlib.sha256).digest()
    return hmac.new(derived, key.encode(), hashlib.sha256).hexdigest()


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """`import,read,events` → the scopes, in a fixed order; anything else is refused by name."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    known = {s.value: s for s in Scope}
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        choices = ", ".join(s.value for s in Scope)
        what = f"unknown scope {', '.join(wrong)}" if wrong else "no scope given"
        raise Refusal("scope_unknown", f"{what}: choose from {choices}", 422)
    return tuple(s for s in Scope if s.value in names)


def _scopes(stored: str) -> tuple[Scope, ...]:
    return tuple(Scope(s) for s in stored.split(",") if s)


UNKNOWN_KEY = (
    "This route needs a service account key (Authorization: Bearer kiosk_sa_…, from "
    "`kiosk integration add`); the one given is missing, unknown or revoked."
)


def authenticate(store: Store, secret: PlantSecret, key: str | None) -> AccountRef:
    """The service account a key belongs to; the same answer for missing, unknown and revoked."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise Refusal("service_account_unknown", UNKNOWN_KEY, 401)
    with store.read() as conn:
        row = conn.execute(
            select(t.service_accounts).where(t.service_accounts.c.key_hmac == key_hmac(secret, key))
        ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise Refusal("service_account_unknown", UNKNOWN_KEY, 401)
    return AccountRef(int(row.id), row.name, frozenset(_scopes(row.scopes)))


DOING = {
    Scope.IMPORT: "import work orders, tools and material lots",
    Scope.READ: "read as-built records",
    Scope.EVENTS: "read the event feed",
    Scope.DEVIATIONS: "raise and list deviations",
}


def require(account: AccountRef, scope: Scope) -> AccountRef:
    """The one rule of every integration route: the account holds the route's scope."""
    if scope not in account.scopes:
        held = ", ".join(s.value for s in Scope if s in account.scopes) or "none"
        raise Refusal(
            "scope_missing",
            f"Service account {account.name} may not {DOING[scope]}: that needs scope "
            f"{scope.value}, and it has {held}.",
            403,
        )
    return account


# --- managing accounts (kiosk integration add | list | revoke) ------------------------------------


def add_account(
    store: Store, secret: PlantSecret, name: str, scopes: Iterable[Scope], now: datetime
) -> str:
    """Create the account (or give a revoked one a new life) and return its key, once."""
    if NAME.fullmatch(name) is None:
        raise Refusal(
            "service_account_name",
            f"{name!r} is not a usable name: 1 to 40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            422,
        )
    chosen = ",".join(s.value for s in scopes)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    values = {"scopes": chosen, "key_hmac": key_hmac(secret, key), "created_at": now}
    accounts = t.service_accounts
    with store.begin() as conn:
        row = conn.execute(select(accounts).where(accounts.c.name == name)).one_or_none()
        if row is not None and row.revoked_at is None:
            raise Refusal(
                "service_account_exists",
                f"service account {name} exists: revoke it first to give it a new key",
                409,
            )
        if row is None:
            conn.execute(insert(accounts).values(name=name, **values))
        else:
            conn.execute(
                update(accounts).where(accounts.c.id == row.id).values(revoked_at=None, **values)
            )
        _record(conn, "add_service_account", name, {"scopes": chosen.split(",")}, now)
    return key


def revoke_account(store: Store, name: str, now: datetime) -> None:
    accounts = t.service_accounts
    with store.begin() as conn:
        done = conn.execute(
            update(accounts)
            .where(accounts.c.name == name, accounts.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if not done:
            raise Refusal("service_account_unknown", f"no service account {name} in use here", 404)
        _record(conn, "revoke_service_account", name, None, now)


def list_accounts(store: Store) -> list[ServiceAccount]:
    accounts = t.service_accounts
    with store.read() as conn:
        rows = conn.execute(select(accounts).order_by(accounts.c.name)).all()
    return [
        ServiceAccount(
            name=r.name,
            scopes=_scopes(r.scopes),
            created_at=r.created_at,
            revoked_at=r.revoked_at,
        )
        for r in rows
    ]


def _record(conn: Connection, action: str, name: str, new: Any, now: datetime) -> None:
    # No actor: a service account is not a person, and the admin at the console is not known.
    audit.append(
        conn,
        action=action,
        entity=f"service_account:{name}",
        actor=None,
        station=None,
        new=new,
        now=now,
    )


# --- POST /api/v1/import -----------------------------------------------------------------------------


def document_sha256(plant: erp.PlantImport) -> str:
    """The same document however it was spaced or ordered: the hash of its canonical JSON."""
    return hashlib.sha256(audit.canonical(plant.model_dump(mode="json")).encode()).hexdigest()


def import_document(
    store: Store, account: AccountRef, plant: erp.PlantImport, now: datetime
) -> ImportResult:
    """Load the document once. The same document again changes nothing and says when it was
    imported; one that clashes with what the plant has is refused whole."""
    check_fits(plant)
    digest = document_sha256(plant)
    try:
        with store.begin() as conn:
            earlier = _earlier(conn, digest)
            if earlier is not None:
                return earlier
            _refuse_clashes(conn, plant)
            done = _load(conn, plant)
            conn.execute(
                insert(t.integration_imports).values(
                    sha256=digest,
                    account=account.name,
                    summary=done.model_dump_json(),
                    imported_at=now,
                )
            )
            _record(conn, "import_document", account.name, {"sha256": digest}, now)
    except IntegrityError:
        # Another server process imported the same document (or a clashing one) meanwhile.
        with store.read() as conn:
            earlier = _earlier(conn, digest)
        if earlier is None:
            raise _clash("an entry of it was imported by another request meanwhile") from None
        return earlier
    return _result(True, digest, now, done)


def _load(conn: Connection, plant: erp.PlantImport) -> erp.ImportSummary:
    try:
        return erp.load(conn, plant)
    except ValueError as exc:  # erp's own refusal (a certification for no known person, …)
        raise Refusal(
            "import_invalid", f"The document cannot be imported: {str(exc)[:300]}.", 422
        ) from None


def _earlier(conn: Connection, digest: str) -> ImportResult | None:
    row = conn.execute(
        select(t.integration_imports).where(t.integration_imports.c.sha256 == digest)
    ).one_or_none()
    if row is None:
        return None
    summary = erp.ImportSummary.model_validate_json(row.summary)
    return _result(False, digest, row.imported_at, summary)


def _result(imported: bool, digest: str, at: datetime, done: erp.ImportSummary) -> ImportResult:
    counts = done.model_dump()
    listed = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
    message = (
        f"Imported {listed}."
        if imported
        else f"This document was already imported at {at:%Y-%m-%d %H:%M:%S} UTC ({listed}): "
        "nothing changed."
    )
    return ImportResult(
        imported=imported, sha256=digest, imported_at=at, counts=counts, message=message
    )


def _clash(detail: str) -> Refusal:
    return Refusal("import_conflict", f"Nothing was imported: {detail}.", 409)


MAX_STEPS = 20_000
"""Steps one imported document may make (each traveler gets its own copy of the routing): a short
document must not hold the database's writer for minutes."""

# Which table each part of the document goes into: its texts must fit the columns.
_TABLES: dict[type[BaseModel], Any] = {
    erp.WorkOrderSpec: t.work_orders,
    erp.TravelerSpec: t.travelers,
    erp.OperationSpec: t.operations,
    erp.StepSpec: t.steps,
    erp.ItemSpec: t.data_items,
    erp.ToolSpec: t.tools,
    erp.LotSpec: t.material_lots,
}


def check_fits(plant: erp.PlantImport) -> None:
    """Every text fits its column, every number its integer, no entry is named twice: else
    refused (422) before anything is written, naming the first place that does not fit."""
    found = list(_misfits(plant, ""))
    found += _twice(plant)
    steps = sum(
        len(o.travelers) * sum(len(op.steps) for op in o.routing) for o in plant.work_orders
    )
    if steps > MAX_STEPS:
        found.append(f"it makes {steps} steps, at most {MAX_STEPS} in one document: split it")
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise Refusal("import_invalid", f"The document cannot be imported: {found[0]}{more}.", 422)


def misfits(model: BaseModel) -> list[str]:
    """Where a document's texts and numbers do not fit their columns (any document built of the
    import's parts: an engineering change's steps too)."""
    return list(_misfits(model, ""))


def _misfits(model: BaseModel, where: str) -> Iterator[str]:
    table = _TABLES.get(type(model))
    for name, value in model:
        here = f"{where}.{name}" if where else name
        if isinstance(value, list):
            for n, child in enumerate(value):
                if isinstance(child, BaseModel):
                    yield from _misfits(child, f"{here}[{n}]")
        elif table is not None and name in table.c:
            yield from _column_misfit(table.c[name], value, here)


def _column_misfit(column: Any, value: Any, where: str) -> Iterator[str]:
    if isinstance(value, str) and isinstance(column.type, String):
        length = column.type.length
        if length is not None and len(value) > length:
            yield f"{where} is {len(value)} characters long, at most {length} fit"
        elif column.unique and not value.strip():
            yield f"{where} is blank"
    elif isinstance(value, int) and isinstance(column.type, Integer) and not 0 < value <= MAX_ID:
        yield f"{where} must be from 1 to {MAX_ID}"


def _entries(plant: erp.PlantImport) -> dict[str, list[str]]:
    return {
        "work order": [o.number for o in plant.work_orders],
        "traveler": [tr.number for o in plant.work_orders for tr in o.travelers],
        "tool": [tool.code for tool in plant.tools],
        "material lot": [lot.code for lot in plant.material_lots],
    }


def _twice(plant: erp.PlantImport) -> list[str]:
    return [
        f"{noun} {name} appears {n} times in it"
        for noun, names in _entries(plant).items()
        for name, n in Counter(names).items()
        if n > 1
    ]


_COLUMNS = {
    "work order": t.work_orders.c.number,
    "traveler": t.travelers.c.number,
    "tool": t.tools.c.code,
    "material lot": t.material_lots.c.code,
}


def _refuse_clashes(conn: Connection, plant: erp.PlantImport) -> None:
    for noun, names in _entries(plant).items():
        column = _COLUMNS[noun]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            there = conn.execute(select(column).where(column.in_(chunk)).limit(1)).scalar()
            if there is not None:
                raise _clash(f"{noun} {there} is already in the plant")
