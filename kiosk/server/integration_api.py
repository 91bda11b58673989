"""HTTP routes for ERP, MES and QMS: import, the event feed, as-built records.

Each route needs a service account key with exactly one scope (kiosk.server.integration.require);
a station token is not a service account key, nor the other way round. With a broker configured
(events_mqtt_url), the same feed goes out on MQTT while the server runs (kiosk.server.mqtt).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kiosk.server import erp, events, integration, revise
from kiosk.server.api import ERRORS, Service
from kiosk.server.integration import AccountRef
from kiosk.wire import (
    MAX_ID,
    AsBuilt,
    AssetHistory,
    Deviation,
    EventFeed,
    ImportResult,
    Problem,
    RaiseDeviation,
    RevisionResult,
    Scope,
)

if TYPE_CHECKING:
    from kiosk.server.settings import ServerSettings

ANSWERS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    401: {
        "model": Problem,
        "description": "No service account key, or an unknown or revoked one "
        "(rule `service_account_unknown`)",
    },
    403: {
        "model": Problem,
        "description": "The service account lacks the route's scope (rule `scope_missing`)",
    },
    409: {
        "model": Problem,
        "description": "The document clashes with what the plant has (rule `import_conflict`)",
    },
}

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="serviceAccountKey",
    description="A service account key from `kiosk integration add` (kiosk_sa_…); each route "
    "needs one scope: import, read or events.",
)


def scoped(scope: Scope) -> Callable[..., AccountRef]:
    """The dependency of a route that needs `scope`: the account, or a 401/403 problem."""

    def account(
        svc: Service,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> AccountRef:
        key = credentials.credentials if credentials is not None else None
        return integration.require(integration.authenticate(svc.store, svc.secret, key), scope)

    return account


Importer = Annotated[AccountRef, Depends(scoped(Scope.IMPORT))]
Reader = Annotated[AccountRef, Depends(scoped(Scope.READ))]
Watcher = Annotated[AccountRef, Depends(scoped(Scope.EVENTS))]
QualitySystem = Annotated[AccountRef, Depends(scoped(Scope.DEVIATIONS))]


def routes(settings: ServerSettings | None = None) -> APIRouter:
    """The routes, and (with a broker in `settings`) the MQTT publisher for as long as they serve."""
    url = settings.events_mqtt_url if settings is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if url is None:
            yield
            return
        from kiosk.server import mqtt  # aiomqtt: only with a broker configured

        async with mqtt.publishing(app.state.service.store, url):
            yield

    router = APIRouter(prefix="/api/v1", responses=ANSWERS, lifespan=lifespan)
    router.add_api_route("/import", import_document, methods=["POST"], response_model=ImportResult)
    router.add_api_route(
        "/revise", revise_document, methods=["POST"], response_model=RevisionResult
    )
    router.add_api_route("/events", event_feed, methods=["GET"], response_model=EventFeed)
    router.add_api_route("/as-built/{number}", as_built, methods=["GET"], response_model=AsBuilt)
    router.add_api_route(
        "/assets/{asset}/history", asset_history, methods=["GET"], response_model=AssetHistory
    )
    router.add_api_route(
        "/deviations", raise_deviation, methods=["POST"], response_model=Deviation, status_code=201
    )
    router.add_api_route(
        "/deviations", list_deviations, methods=["GET"], response_model=list[Deviation]
    )
    return router


def import_document(svc: Service, account: Importer, body: erp.PlantImport) -> ImportResult:
    """Load work orders with routings, tools and material lots: the JSON of `kiosk import`.
    The same document twice changes nothing the second time (`imported: false`); a document
    with an entry the plant already has, or one that does not fit, is refused whole."""
    return integration.import_document(svc.store, account, body, svc.clock())


def revise_document(
    svc: Service, account: Importer, body: revise.RevisionDocument
) -> RevisionResult:
    """Issue an engineering change: a new revision of a work order's routing steps, with its
    change number and reason (the JSON of `kiosk revise`). Travelers not yet at a changed step
    take the new revision; those in work on it get a redline to acknowledge; signed steps keep
    theirs. The same change again changes nothing (`issued: false`); the same change number
    with other content is refused (rule `change_conflict`), as is a document naming a work
    order or step the plant does not have (rule `revision_invalid`)."""
    return revise.issue(svc.store, body, svc.clock(), account.name)


def event_feed(
    svc: Service,
    _account: Watcher,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=events.FEED_MAX)] = events.FEED_PAGE,
) -> EventFeed:
    """What happened after the cursor `after`, oldest first: steps completed, values out of
    tolerance, NCRs raised and dispositioned, holds placed and released, travelers completed.
    Keep `next_cursor` and ask again with it; the feed is the audit chain, so it never changes
    behind a cursor and loses nothing."""
    with svc.store.read() as conn:
        return events.feed(conn, after, limit)


def as_built(svc: Service, _account: Reader, number: str) -> AsBuilt:
    """A traveler's as-built record (the same JSON as a station's `/travelers/{number}/as-built`)."""
    with svc.store.read() as conn:
        return erp.as_built(conn, number.strip().upper())


def asset_history(svc: Service, _account: Reader, asset: str) -> AssetHistory:
    """An asset's as-maintained record: the as-built of each of its maintenance tasks, in the
    order imported (the JSON of `kiosk export history ASSET`)."""
    with svc.store.read() as conn:
        return erp.asset_history(conn, asset)
def raise_deviation(svc: Service, account: QualitySystem, body: RaiseDeviation) -> Deviation:
    """Raise a deviation (numbered DEV-0001, …): it takes effect only once quality approves it
    by signature at a station. One that does not fit the plant (no such traveler, part or item,
    limits that narrow, no reach) is refused and nothing is written."""
    from kiosk.server import deviations

    with svc.store.begin() as conn:
        return deviations.raise_deviation(conn, body, f"{account.name} (service account)", svc.clock())


def list_deviations(svc: Service, _account: QualitySystem) -> list[Deviation]:
    """Every deviation, oldest first: its status, approvals and the travelers that used it."""
    from kiosk.server import deviations

    with svc.store.read() as conn:
        return deviations.all_deviations(conn)
