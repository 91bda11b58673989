"""Documents at revision: drawings and specifications (PDF, PNG, JPEG, SVG) that steps show.

A document is a number, a revision, a title and the SHA-256 of its file. The bytes are in the
plant's file store (kiosk.server.files) under that hash; the row is written with an audit record
holding all of its columns (`document:N`), so `kiosk audit verify` names a row edited behind the
server's back, and, re-hashing the file, a file swapped on disk. A revision once added never
changes: a new drawing is a new revision, which supersedes the earlier ones of its number.

Steps name documents by number and revision in the import (`documents: [{"number", "revision"}]`),
kept in the step's own row, so a changed reference is a change of the step and of the content
its signers sign (kiosk.server.records.StepContent).

A tablet beside a station opens a document by a short-lived signed link (`link`): the URL holds
the document, an expiry and an HMAC under a key derived from the plant secret, never a token, and
it opens that one file only, until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, records
from kiosk.server import schema as t
from kiosk.wire import Document, DocumentNumber, DocumentRef, DocumentRevision

if TYPE_CHECKING:
    from kiosk.server.files import FileStore
    from kiosk.server.security import PlantSecret

TITLE = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""A title is one line of text: no control character (C0, DEL, C1), as the guard has it."""
LINK_LIFETIME = timedelta(minutes=10)
"""How long a tablet's link opens the file: long enough to walk over and scan it."""


class DocumentSpec(BaseModel):
    """What `kiosk document add` and POST /api/v1/documents are given beside the file."""

    model_config = ConfigDict(extra="forbid")
    number: DocumentNumber
    revision: DocumentRevision
    title: str = Field(min_length=1, max_length=200, pattern=TITLE)


def _document(row: Any, newest: dict[str, str]) -> Document:
    later = newest.get(row.number)
    return Document(
        number=row.number,
        revision=row.revision,
        title=row.title,
        sha256=row.sha256,
        media_type=row.media_type,
        size=row.size,
        added_at=row.added_at,
        superseded_by=later if later != row.revision else None,
    )


def _newest(conn: Connection, numbers: Iterable[str] | None = None) -> dict[str, str]:
    """Number → its newest revision (the last added): it supersedes the others."""
    query = select(t.documents.c.number, t.documents.c.revision).order_by(t.documents.c.id)
    if numbers is not None:
        query = query.where(t.documents.c.number.in_(list(numbers)))
    return {r.number: r.revision for r in conn.execute(query)}


def add(
    conn: Connection,
    files: FileStore,
    spec: DocumentSpec,
    data: bytes,
    *,
    actor: str | None,
    now: datetime,
) -> tuple[Document, bool]:
    """Keep a document; answers it and whether it is new. The same number, revision and file
    again changes nothing; the same number and revision with other bytes is refused."""
    files.check(data)  # type and size first: a refused file is not kept, nor is its row
    digest = hashlib.sha256(data).hexdigest()
    found = conn.execute(
        select(t.documents).where(
            t.documents.c.number == spec.number, t.documents.c.revision == spec.revision
        )
    ).first()
    if found is not None:
        if found.sha256 != digest or found.title != spec.title:
            raise Refusal(
                "document_revision_exists",
                f"{spec.number} rev {spec.revision} is already in the plant with another file "
                "or title: a changed document is a new revision.",
                409,
            )
        return _document(found, _newest(conn, [spec.number])), False
    kept = files.put(data)
    values = {
        **spec.model_dump(),
        "sha256": kept.sha256,
        "media_type": kept.media_type,
        "size": kept.size,
        "added_at": now,
    }
    row_id = conn.execute(
        insert(t.documents).values(**values).returning(t.documents.c.id)
    ).scalar_one()
    audit.append(
        conn, action="add_document", entity=f"document:{row_id}", actor=actor, station=None,
        new=records.state(values), now=now,
    )  # fmt: skip
    return find(conn, spec.number, spec.revision), True


def listing(conn: Connection) -> list[Document]:
    newest = _newest(conn)
    rows = conn.execute(select(t.documents).order_by(t.documents.c.number, t.documents.c.id)).all()
    return [_document(r, newest) for r in rows]


def _revisions(conn: Connection, number: str) -> list[str]:
    return list(
        conn.execute(
            select(t.documents.c.revision)
            .where(t.documents.c.number == number)
            .order_by(t.documents.c.id)
        ).scalars()
    )


def find(conn: Connection, number: str, revision: str) -> Document:
    number, revision = number.strip().upper(), revision.strip().upper()
    row = conn.execute(
        select(t.documents).where(
            t.documents.c.number == number, t.documents.c.revision == revision
        )
    ).first()
    if row is None:
        rules.ensure_document_known(number, revision, _revisions(conn, number))
    return _document(row, _newest(conn, [number]))


def ensure_known(conn: Connection, refs: Sequence[DocumentRef]) -> None:
    """Every reference names a document the plant has at that revision (the import's check)."""
    have: dict[str, list[str]] = defaultdict(list)
    wanted = {r.number for r in refs}
    if wanted:
        query = select(t.documents.c.number, t.documents.c.revision).where(
            t.documents.c.number.in_(wanted)
        )
        for row in conn.execute(query.order_by(t.documents.c.id)):
            have[row.number].append(row.revision)
    for ref in refs:
        rules.ensure_document_known(ref.number, ref.revision, have[ref.number])


def refs_json(refs: Sequence[DocumentRef]) -> str | None:
    """A step's references as its row keeps them (None: it names no document)."""
    if not refs:
        return None
    return audit.canonical([{"number": r.number, "revision": r.revision} for r in refs])


def refs_of(column: str | None) -> list[tuple[str, str]]:
    if not column:
        return []
    return [(r["number"], r["revision"]) for r in json.loads(column)]


def hashes(conn: Connection) -> dict[tuple[str, str], str]:
    """(number, revision) → SHA-256 of every document."""
    rows = conn.execute(select(t.documents.c.number, t.documents.c.revision, t.documents.c.sha256))
    return {(r.number, r.revision): r.sha256 for r in rows}


def content_of(column: str | None, known: dict[tuple[str, str], str]) -> tuple[str, ...]:
    """What a step's signers signed of its documents (records.StepContent.documents)."""
    return tuple(f"{n}/{r}/{known.get((n, r), '')}" for n, r in refs_of(column))


def of_steps(conn: Connection, columns: Iterable[str | None]) -> dict[tuple[str, str], Document]:
    """The documents the steps' `documents` columns name, for building wire Steps."""
    refs = {ref for column in columns for ref in refs_of(column)}
    if not refs:
        return {}
    numbers = {n for n, _ in refs}
    newest = _newest(conn, numbers)
    rows = conn.execute(select(t.documents).where(t.documents.c.number.in_(numbers)))
    return {(r.number, r.revision): _document(r, newest) for r in rows}


def file_findings(
    conn: Connection, files: FileStore, expected: dict[tuple[str, int], records.Expected]
) -> list[records.Finding]:
    """Each document whose file is missing from the store or no longer has its SHA-256."""
    found = []
    for row in conn.execute(select(t.documents).order_by(t.documents.c.id)):
        if not files.intact(row.sha256):
            seq = expected.get(("document", row.id), records.Expected()).created
            found.append(
                records.Finding(
                    seq,
                    f"document {row.number} rev {row.revision}: its file {row.sha256[:12]}... "
                    "is missing from the file store or has been changed (swapped)",
                )
            )
    return found


# --- the tablet's signed link --------------------------------------------------------------------


def _link_mac(secret: PlantSecret, doc: Document, until: int) -> str:
    key = hashlib.sha256(b"kiosk document link\x00" + secret.audit_key()).digest()
    message = f"{doc.number}\x00{doc.revision}\x00{doc.sha256}\x00{until}".encode()
    # 128 bits of the MAC: as hard to forge, and a shorter URL is a smaller QR code to scan.
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def link_path(secret: PlantSecret, doc: Document, now: datetime) -> tuple[str, datetime]:
    """The path (with query) of a signed link to `doc`'s file, and when it stops opening it."""
    expires = now + LINK_LIFETIME
    until = int(expires.timestamp())
    path = f"/api/v1/documents/{quote(doc.number)}/{quote(doc.revision)}/shared"
    return f"{path}?until={until}&sig={_link_mac(secret, doc, until)}", expires


class LinkInvalid(Refusal):
    """A forged, altered or expired link, or one to no document: all answered alike."""

    def __init__(self) -> None:
        super().__init__(
            "document_link_invalid",
            "This document link is not valid or has expired: show the QR code at the station "
            "again.",
            403,
        )


def check_link(secret: PlantSecret, doc: Document, until: int, sig: str, now: datetime) -> None:
    """A link opens the file only as signed and only until it expires."""
    good = hmac.compare_digest(_link_mac(secret, doc, until), sig)
    if not good or now.timestamp() > until:
        raise LinkInvalid()
