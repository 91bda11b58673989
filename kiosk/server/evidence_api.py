"""Routes of photos and files as evidence (kiosk/server/evidence.py does the work).

For stations (station token): ask for a one-use upload link, ask whether the file arrived, read
a kept file by its hash for the thumbnail. For the phone (the link's secret alone): a small,
self-contained HTML page (no script, no external asset) with a file input that opens the camera,
and the POST it sends. Every refusal on the page is its HTTP status and a sentence.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from kiosk.rules import Refusal
from kiosk.server import evidence
from kiosk.server.api import ERRORS, Service, Station
from kiosk.server.service import ExecutionService
from kiosk.wire import MAX_ID, RequestUpload, UploadLink, UploadStatus

router = APIRouter()
LinkId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A link's id as the database keeps ids: a larger number names no link (and no row)."""


@router.post("/api/v1/uploads", response_model=UploadLink, responses=ERRORS)
def request_upload(svc: Service, st: Station, body: RequestUpload, request: Request) -> UploadLink:
    """A one-use upload link for a photo or file item, for the person the session proves; the
    link is good for `evidence.LINK_MINUTES` minutes and names the server as this request saw it."""
    with svc.store.begin() as conn:
        return evidence.issue(conn, st, body, str(request.base_url), svc.clock())


@router.get("/api/v1/uploads/{link_id}", response_model=UploadStatus, responses=ERRORS)
def upload_status(svc: Service, st: Station, link_id: LinkId) -> UploadStatus:
    """Whether the file of a link this station asked for has arrived."""
    with svc.store.read() as conn:
        return evidence.status(conn, st, link_id, svc.clock())


@router.get(
    "/api/v1/evidence/{sha256}",
    response_class=Response,
    responses={
        **ERRORS,
        200: {
            "content": {"image/png": {}, "image/jpeg": {}, "application/pdf": {}},
            "description": "The file's bytes, of the type they are",
        },
    },
)
def evidence_file(svc: Service, _st: Station, sha256: str) -> Response:
    """A kept photo or file by its SHA-256 (the station draws the thumbnail from it)."""
    from kiosk.server.files import sniff

    data = svc.files.read(sha256)
    return Response(data, media_type=sniff(data) or "application/octet-stream")


# --- the phone's page ---------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.2em; max-width: 36em; font-size: 1.1em; }}
h1 {{ font-size: 1.3em; }}
.refused {{ color: #a00; font-weight: bold; }} .done {{ color: #060; font-weight: bold; }}
input, button {{ font-size: 1.1em; margin: .6em 0; display: block; }}
button {{ padding: .5em 1.5em; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(
        _PAGE.format(title=escape(title), body=body), status_code=status, headers=headers
    )


def _refusal_page(refusal: Refusal) -> HTMLResponse:
    body = f'<p class="refused" id="message">{escape(refusal.detail)}</p>'
    return _page("Not recorded", body, refusal.status)


def _form(about: dict[str, str]) -> str:
    photo = about["kind"] == "photo"
    accept = (
        'accept="image/*" capture="environment"' if photo else 'accept="image/*,application/pdf"'
    )
    what = "photo" if photo else "file (photo or PDF)"
    return (
        f"<p>{escape(about['traveler'])} step {escape(about['step'])}<br>"
        f"<b>{escape(about['label'])}</b></p>"
        f"<p>Recorded in the name of {escape(about['person'])}. This link takes one {what} "
        f"and is good until {escape(about['expires'])}.</p>"
        '<form method="post" enctype="multipart/form-data">'
        f'<input type="file" name="file" id="file" {accept} required>'
        '<button type="submit" id="send">Upload</button></form>'
    )


def _open(svc: ExecutionService, secret: str) -> dict[str, str]:
    with svc.store.read() as conn:
        return evidence.describe(conn, evidence.link_of(conn, secret, svc.clock()))


@router.get("/upload/{secret}", response_class=HTMLResponse, include_in_schema=False)
def upload_page(svc: Service, secret: str) -> HTMLResponse:
    try:
        about = _open(svc, secret)
    except Refusal as refusal:
        return _refusal_page(refusal)
    return _page(f"Upload {about['label']}", _form(about))


@router.post("/upload/{secret}", response_class=HTMLResponse, include_in_schema=False)
async def upload(svc: Service, secret: str, request: Request) -> HTMLResponse:
    try:
        data = await _file_of(request)
        message = await run_in_threadpool(_receive, svc, secret, data)
    except Refusal as refusal:
        return _refusal_page(refusal)
    return _page("Recorded", f'<p class="done" id="message">{escape(message)}</p>'
                 "<p>You can close this page.</p>")  # fmt: skip


async def _file_of(request: Request) -> bytes:
    try:
        form = await request.form(max_files=1, max_fields=5)
    except Exception:  # noqa: BLE001 - a broken or foreign body: say so, record nothing
        raise Refusal(
            "upload_unreadable", "The upload could not be read; try again.", 400
        ) from None
    sent = form.get("file")
    if not isinstance(sent, UploadFile):
        raise Refusal("file_missing", "Choose a photo or file first.", 422)
    return await sent.read()


def _receive(svc: ExecutionService, secret: str, data: bytes) -> str:
    now: datetime = svc.clock()
    with svc.store.begin() as conn:
        return evidence.receive(conn, svc.files, secret, data, now)
