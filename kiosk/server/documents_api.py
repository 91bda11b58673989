"""HTTP routes of documents at revision (kiosk.server.documents).

- POST /api/v1/documents?number=&revision=&title= with the file as the body: an ERP/PLM system's
  service account with the `import` scope adds a document (as `kiosk document add` does).
- GET /api/v1/documents/{number}/{revision} and …/file: a station reads a document's metadata
  and its bytes with its station token.
- GET …/link: a station asks for a short-lived signed link for a tablet beside it (its QR code);
  GET …/shared?until=&sig= is what that link opens: the one file, until it expires, no token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.exc import IntegrityError

from kiosk.rules import Refusal
from kiosk.server import documents
from kiosk.server.api import ERRORS, Service, Station
from kiosk.server.documents import TITLE, DocumentSpec
from kiosk.server.integration_api import Importer
from kiosk.wire import DOCUMENT_NUMBER, DOCUMENT_REVISION, Document, DocumentLink, Problem

_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {t: {} for t in ("application/pdf", "image/png", "image/jpeg", "image/svg+xml")},
        "description": "The document's file, byte for byte; its ETag is its SHA-256",
    }
}
_ADDED: dict[int | str, dict[str, Any]] = {
    200: {"model": Document, "description": "Already there with the same file: nothing changed"},
    201: {"model": Document, "description": "Added"},
    409: {"model": Problem, "description": "The revision is there with another file or title"},
    415: {
        "model": Problem,
        "description": "Not a PDF, PNG, JPEG or SVG (rule `file_type_refused`)",
    },
}
router = APIRouter(prefix="/api/v1/documents", responses=ERRORS, tags=["documents"])


def _find(svc: Service, number: str, revision: str) -> Document:
    with svc.store.read() as conn:
        return documents.find(conn, number, revision)


def _file(svc: Service, doc: Document) -> Response:
    data = svc.files.read(doc.sha256)
    return Response(
        data,
        media_type=doc.media_type,
        headers={
            "ETag": f'"{doc.sha256}"',
            # A revision never changes: a reader may keep it as long as it likes.
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            # An SVG opened in a tablet's browser runs no script and reaches nothing.
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
            "Content-Disposition": f'inline; filename="{doc.number}-{doc.revision}"',
        },
    )


@router.post(
    "",
    response_model=Document,
    status_code=201,
    responses=_ADDED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file itself, with its Content-Type",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("application/pdf", "image/png", "image/jpeg", "image/svg+xml")
            },
        }
    },
)
async def add_document(
    svc: Service,
    account: Importer,
    request: Request,
    number: Annotated[str, Query(pattern=DOCUMENT_NUMBER, examples=["DWG-8810-011"])],
    revision: Annotated[str, Query(pattern=DOCUMENT_REVISION, examples=["C"])],
    title: Annotated[str, Query(min_length=1, max_length=200, pattern=TITLE)],
) -> Response:
    """Add a document at a revision; the body is the file itself (PDF, PNG, JPEG or SVG,
    known by its bytes). The same number, revision and file again answers 200 and changes
    nothing; other bytes under a number and revision the plant has are refused (409)."""
    spec = _spec(number, revision, title)
    data = await request.body()
    try:
        with svc.store.begin() as conn:
            doc, new = documents.add(
                conn, svc.files, spec, data, actor=account.name, now=svc.clock()
            )
    except IntegrityError:  # another request added this revision meanwhile
        raise Refusal(
            "document_revision_exists",
            f"{spec.number} rev {spec.revision} was added by another request meanwhile.",
            409,
        ) from None
    body = doc.model_dump_json()
    return Response(body, status_code=201 if new else 200, media_type="application/json")


def _spec(number: str, revision: str, title: str) -> DocumentSpec:
    from pydantic import ValidationError

    try:
        return DocumentSpec(number=number, revision=revision, title=title)
    except ValidationError as exc:
        where = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise Refusal(
            "document_invalid",
            f"Not a document number, revision and title the plant can keep ({where}): "
            "number and revision are letters, digits, '.', '-' (number also '_').",
            422,
        ) from None


@router.get("/{number}/{revision}", response_model=Document)
def document(svc: Service, _st: Station, number: str, revision: str) -> Document:
    """A document's number, revision, title, type, size, SHA-256, and the revision that
    supersedes it, if any."""
    return _find(svc, number, revision)


@router.get("/{number}/{revision}/file", response_class=Response, responses=_FILE)
def document_file(svc: Service, _st: Station, number: str, revision: str) -> Response:
    """The document's file, byte for byte as added (its SHA-256 is the document's)."""
    return _file(svc, _find(svc, number, revision))


@router.get("/{number}/{revision}/link", response_model=DocumentLink)
def document_link(
    svc: Service, _st: Station, request: Request, number: str, revision: str
) -> DocumentLink:
    """A link to the file for a tablet beside the station, good for a few minutes."""
    doc = _find(svc, number, revision)
    path, expires = documents.link_path(svc.secret, doc, svc.clock())
    base = str(request.base_url).rstrip("/")
    return DocumentLink(url=base + path, expires_at=expires)


@router.get("/{number}/{revision}/shared", response_class=Response, responses=_FILE)
def shared_file(
    svc: Service,
    number: str,
    revision: str,
    until: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(min_length=32, max_length=32)],
) -> Response:
    """What a station's signed link opens: the file, while the link is valid."""
    try:
        doc = _find(svc, number, revision)
    except Refusal:  # an unknown document answers as a bad link does: the link tells nothing
        raise documents.LinkInvalid() from None
    documents.check_link(svc.secret, doc, until, sig, svc.clock())
    return _file(svc, doc)
