"""HTTP routes of the execution API: thin, each one a call into ExecutionService."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from kiosk.rules import Refusal
from kiosk.server import erp
from kiosk.server.domain import StationRef
from kiosk.server.idempotency import problem_json
from kiosk.server.service import ExecutionService
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
    StationConfig,
    StationInfo,
    Traveler,
    TravelerSummary,
    UnlockUser,
    Verified,
)

PROBLEM = "application/problem+json"
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=100)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "description": text}
    for code, text in [
        (401, "Station not enrolled"),
        (403, "Refused for this person"),
        (404, "Not found"),
        (409, "Refused by a rule"),
        (422, "Invalid request"),
    ]
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def service(request: Request) -> ExecutionService:
    svc: ExecutionService = request.app.state.service
    return svc


Service = Annotated[ExecutionService, Depends(service)]


def station(svc: Service, authorization: Annotated[str | None, Header()] = None) -> StationRef:
    """Deny by default: every route below needs a station token."""
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    return svc.authenticate(token)


Station = Annotated[StationRef, Depends(station)]


def raw(status: int, body: str) -> Response:
    return Response(
        body, status_code=status, media_type="application/json" if status < 400 else PROBLEM
    )


def refusal_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return raw(exc.status, problem_json(exc))


@router.post("/enroll", response_model=Enrollment)
def enroll(svc: Service, body: EnrollRequest) -> Enrollment:
    return svc.enroll(body.code)


@router.get("/station", response_model=StationInfo)
def station_info(svc: Service, st: Station) -> StationInfo:
    return svc.station_info(st)


@router.post("/login", response_model=Person)
def login(svc: Service, st: Station, body: BadgeLogin) -> Person:
    return svc.login(st, body.badge)


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


@router.get("/queue", response_model=list[TravelerSummary])
def work_queue(svc: Service, st: Station) -> list[TravelerSummary]:
    return svc.queue(st)


@router.get("/travelers/{number}", response_model=Traveler)
def traveler(svc: Service, _st: Station, number: str) -> Traveler:
    return svc.traveler(number)


@router.get("/travelers/{number}/as-built", response_model=AsBuilt)
def as_built(svc: Service, _st: Station, number: str) -> AsBuilt:
    with svc.store.begin() as conn:
        return erp.as_built(conn, number.strip().upper())


@router.post("/actions", response_model=ActionResult)
def perform(svc: Service, st: Station, key: IdempotencyKey, body: ActionEnvelope) -> Response:
    """Apply one station action, exactly once per Idempotency-Key."""
    return raw(*svc.perform(st, key, body.action))


@router.post("/actions/batch", response_model=BatchResult)
def perform_batch(svc: Service, st: Station, body: ActionBatch) -> BatchResult:
    """Deliver queued actions in the station's order; each is applied once per key."""
    return svc.perform_batch(st, body)


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
