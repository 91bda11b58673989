"""HTTP routes of the execution API: thin, each one a call into ExecutionService."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from kiosk.rules import Refusal
from kiosk.server import erp, views
from kiosk.server.domain import StationRef, load_tool
from kiosk.server.idempotency import problem_json
from kiosk.server.service import ExecutionService, Presented
from kiosk.wire import (
    ActionBatch,
    ActionEnvelope,
    ActionResult,
    AdminSession,
    AsBuilt,
    BadgeLogin,
    BatchResult,
    CredentialCache,
    Credentials,
    Enrollment,
    EnrollRequest,
    Heartbeat,
    HeartbeatAnswer,
    Person,
    PlantOverview,
    Problem,
    SignedIn,
    SignOut,
    StationConfig,
    StationInfo,
    Tool,
    Traveler,
    TravelerSummary,
    UnlockUser,
    Verified,
)

PROBLEM = "application/problem+json"
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=100,
        description="A new unique key for each action, sent again unchanged when the same action "
        "is retried: the server applies it once and answers a retry as it answered the first. "
        "Without it the request is refused (400, rule `idempotency_key_missing`).",
    ),
]
# Every refusal is an RFC 9457 problem; kiosk.server.app.contract files each of these under
# application/problem+json in the OpenAPI document.
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "description": text}
    for code, text in [
        (400, "Malformed request, or the Idempotency-Key header is missing"),
        (401, "Station not enrolled"),
        (403, "Refused for this person"),
        (404, "Not found"),
        (409, "Refused by a rule"),
        (413, "Request body too large"),
        (422, "Invalid request"),
        (429, "Too many attempts: try again after Retry-After seconds"),
    ]
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


async def service(request: Request) -> ExecutionService:
    # async: FastAPI runs a plain function dependency on a worker thread, a hop per request.
    svc: ExecutionService = request.app.state.service
    return svc


Service = Annotated[ExecutionService, Depends(service)]


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def station(svc: Service, authorization: Annotated[str | None, Header()] = None) -> StationRef:
    """Deny by default: every route below needs a station token."""
    return svc.authenticate(bearer(authorization))


Station = Annotated[StationRef, Depends(station)]


async def presented(authorization: Annotated[str | None, Header()] = None) -> Presented:
    """The station token of a route that writes: checked inside the transaction it writes in."""
    return Presented(bearer(authorization))


StationToken = Annotated[Presented, Depends(presented)]


def raw(status: int, body: str) -> Response:
    return Response(
        body, status_code=status, media_type="application/json" if status < 400 else PROBLEM
    )


def refusal_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    response = raw(exc.status, problem_json(exc))
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.post("/enroll", response_model=Enrollment)
def enroll(svc: Service, body: EnrollRequest) -> Enrollment:
    return svc.enroll(body.code)


@router.get("/station", response_model=StationInfo)
def station_info(svc: Service, st: Station) -> StationInfo:
    return svc.station_info(st)


@router.post("/login", response_model=SignedIn)
def login(svc: Service, st: Station, body: BadgeLogin) -> SignedIn:
    """Badge-in: the person, and the session that proves them on this station's actions."""
    return svc.login(st, body.badge)


@router.post("/logout", response_model=int)
def logout(svc: Service, st: Station, body: SignOut) -> int:
    """End a person session at this station; answers how many were ended (0 or 1)."""
    return svc.logout(st, body)


@router.post("/verify", response_model=Verified)
def verify(svc: Service, st: Station, body: Credentials) -> Verified:
    """Check badge + PIN now; wrong PINs count toward lock-out.

    The answer carries a single-use signing ticket, so a signature queued in the station's outbox
    proves who signed without the station ever storing a PIN.
    """
    return svc.verify(st, body)


@router.get("/credential-cache", response_model=CredentialCache)
def credential_cache(svc: Service, st: Station) -> CredentialCache:
    """Verifiers that let this station identify people while the server is unreachable."""
    return svc.credential_cache(st)


Text = Annotated[str | None, Query(min_length=1, max_length=40)]
"""A traveler or step number, a search prefix: short text."""


@router.get("/queue", response_model=list[TravelerSummary])
def work_queue(
    svc: Service,
    st: Station,
    after: Text = None,
    search: Text = None,
    limit: Annotated[int, Query(ge=1, le=views.QUEUE_MAX)] = views.QUEUE_PAGE,
) -> list[TravelerSummary]:
    """This station's work, in traveler number order: a page of `limit` after the traveler
    number `after`; `search` keeps those whose number, part number or serial starts with it."""
    return svc.queue(st, after=after, search=search, limit=limit)


@router.get("/travelers/{number}", response_model=Traveler)
def traveler(
    svc: Service, _st: Station, number: str, operation: Text = None, first: Text = None,
    last: Text = None,
) -> Traveler:  # fmt: skip
    """The traveler; for a long routing, one `operation` (its number) or the steps numbered
    `first` to `last`."""
    return svc.traveler(number, operation=operation, first=first, last=last)


@router.get("/tools/{code}", response_model=Tool)
def tool(svc: Service, _st: Station, code: str) -> Tool:
    """A tool of the crib register with its calibration due date: a station checks a scanned
    tool with it before it queues the value (404, rule `tool_unknown`, when there is none)."""
    code = code.strip().upper()
    with svc.store.read() as conn:
        found = load_tool(conn, code)
    if found is None:
        raise Refusal("tool_unknown", f"Tool {code} is not in the tool crib register.", 404)
    return found[0]


@router.get("/travelers/{number}/as-built", response_model=AsBuilt)
def as_built(svc: Service, _st: Station, number: str) -> AsBuilt:
    with svc.store.read() as conn:
        return erp.as_built(conn, number.strip().upper())


@router.post("/actions", response_model=ActionResult)
def perform(svc: Service, st: StationToken, key: IdempotencyKey, body: ActionEnvelope) -> Response:
    """Apply one station action, exactly once per Idempotency-Key."""
    return raw(*svc.perform(st, key, body.action))


@router.post("/actions/batch", response_model=BatchResult)
async def perform_batch(svc: Service, st: StationToken, body: ActionBatch) -> Response:
    """Deliver queued actions in the station's order; each is applied once per key."""
    return await deliver(svc, st, body)


async def deliver(svc: ExecutionService, st: Presented, batch: ActionBatch) -> Response:
    """A delivered batch's answer, for the route and for the delivery lane alike."""
    # Serialised once, here: returned as a model, FastAPI would validate it all over again.
    return raw(200, (await svc.perform_batch_async(st, batch)).model_dump_json())


@router.post("/users/unlock", response_model=Person)
def unlock(svc: Service, st: Station, key: IdempotencyKey, body: UnlockUser) -> Response:
    return raw(*svc.unlock(st, key, body))


@router.post("/heartbeat", response_model=HeartbeatAnswer)
def heartbeat(svc: Service, st: Station, body: Heartbeat) -> HeartbeatAnswer:
    """A station's 30-second report; the answer says which config version it should run."""
    return svc.heartbeat(st, body)


AdminToken = Annotated[str | None, Header(alias="X-Admin-Session")]


@router.post("/admin/session", response_model=AdminSession)
def admin_session(svc: Service, st: Station, body: Credentials) -> AdminSession:
    """Open the admin console with an admin's badge + PIN."""
    return svc.admin_session(st, body)


@router.get("/admin/overview", response_model=PlantOverview)
def overview(svc: Service, st: Station, session: AdminToken = None) -> PlantOverview:
    return svc.overview(st, session)


@router.put("/admin/stations/{name}/config", response_model=int)
def set_station_config(
    svc: Service, st: Station, name: str, body: StationConfig, session: AdminToken = None
) -> int:
    """Replace a station's central config; answers the new config version."""
    return svc.set_station_config(st, session, name, body)


@router.post("/admin/stations/{name}", response_model=str)
def add_station(
    svc: Service, st: Station, name: str, work_center: str, session: AdminToken = None
) -> str:
    """Create (or re-key) a station; answers a one-time enrollment code."""
    return svc.admin_add_station(st, session, name, work_center)


health = APIRouter()


@health.get("/health")
def healthcheck() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/travelers/{number}/as-built.pdf",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {}},
            "description": "The as-built record, printable; X-Record-SHA256 is the digest it "
            "prints on every page (of the canonical JSON it carries as as-built.json)",
        }
    },
)
def as_built_pdf(svc: Service, _st: Station, number: str) -> Response:
    """The same record as `/as-built`, as a PDF an auditor can file (kiosk/server/pdf.py)."""
    from kiosk.server import pdf, printable  # fpdf2 loads with the first PDF, not at start

    with svc.store.begin() as conn:
        made = printable.read(conn, number)
    return Response(
        pdf.render(made, svc.files.checked),
        media_type="application/pdf",
        headers={
            "X-Record-SHA256": made.sha256,
            "Content-Disposition": f'inline; filename="{pdf.default_filename(made)}"',
        },
    )
