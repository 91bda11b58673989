"""The ASGI application of the reference execution API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as NoConnectionInTime
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from kiosk import __version__
from kiosk.rules import Refusal
from kiosk.server import (
    api,
    audit,
    board_api,
    demo,
    documents_api,
    evidence_api,
    guard,
    integration_api,
    observe,
)
from kiosk.server.api import PROBLEM
from kiosk.server.delivery_lane import DeliveryLane
from kiosk.server.files import DEFAULT_MAX_BYTES, FileStore
from kiosk.server.guard import RequestGuard
from kiosk.server.idempotency import problem_json
from kiosk.server.metrics import HttpMetrics, PlantCollector
from kiosk.server.security import PlantSecret
from kiosk.server.service import ExecutionService
from kiosk.server.settings import DATABASE_CONNECTIONS, ServerSettings
from kiosk.server.store import Store, StoreError
from kiosk.wire import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    secret_file: Path
    demo: bool = False
    files_dir: Path | None = None
    """Unset: `files` beside the plant secret (the data directory)."""
    max_file_bytes: int = DEFAULT_MAX_BYTES
    database_connections: int = DATABASE_CONNECTIONS

    @classmethod
    def of(cls, settings: ServerSettings, *, demo: bool = False) -> ServerConfig:
        return cls(
            settings.database,
            settings.plant_secret,
            demo=demo,
            files_dir=settings.files,
            max_file_bytes=settings.max_file_mb * 1024 * 1024,
            database_connections=settings.database_connections,
        )

    def file_store(self) -> FileStore:
        root = self.files_dir or self.secret_file.with_name("files")
        return FileStore(root, self.max_file_bytes)


def open_service(config: ServerConfig) -> ExecutionService:
    """Open the store (creating the schema if new) and seed the demo plant when asked and empty."""
    secret = PlantSecret.load_or_create(config.secret_file)
    store = Store.open(
        config.database_url,
        audit_key=secret.audit_key(),
        connections=config.database_connections,
    )
    svc = ExecutionService(
        store, secret, witness=audit.witness_path(config.secret_file), files=config.file_store()
    )
    if config.demo and store.is_empty():
        demo.seed(svc)
    return svc


def _invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(_missing_idempotency_key(err) for err in errors):
        return _problem(
            Refusal(
                "idempotency_key_missing",
                "This request needs an Idempotency-Key header: a new unique key for each "
                "action, sent again unchanged when the same action is retried.",
                400,
            )
        )
    parts = []
    for err in errors[:5]:
        # A fault in the body as a whole (a list where an object belongs) has no field to name.
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "the body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return _problem(
        Refusal("request_invalid", "The request is not valid: " + "; ".join(parts) + ".", 422)
    )


def _missing_idempotency_key(err: Any) -> bool:
    loc = tuple(str(p).lower() for p in err.get("loc", ()))
    return err.get("type") == "missing" and loc == ("header", "idempotency-key")


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) in the one problem shape."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        shown = request.url.path if len(request.url.path) <= 80 else request.url.path[:80] + "…"
        refusal = Refusal("not_found", f"There is nothing at {shown} on this server.", 404)
    elif status == 405:
        refusal = Refusal(
            "method_not_allowed", f"{request.method} is not allowed at this address.", 405
        )
    else:
        try:
            words = HTTPStatus(status).phrase
        except ValueError:
            words = "Refused"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else f"{words}."
        rule = "".join(c if c.isalnum() else "_" for c in words.lower())
        refusal = Refusal(rule, detail, status)
    response = _problem(refusal)
    response.headers.update(exc.headers or {})
    if status == 405:  # Starlette names the first route's methods; a path may have several
        response.headers["Allow"] = _allowed_at(request) or response.headers.get("Allow", "")
    return response


def _allowed_at(request: Request) -> str:
    """Every method the API documents at the request's path."""
    from starlette.routing import compile_path

    methods: set[str] = set()
    for path, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(path)[0].match(request.url.path):
            methods |= {m.upper() for m in operations}
    return ", ".join(sorted(methods))


def _out_of_range(_request: Request, exc: Exception) -> Response:
    """A number got past validation that the database cannot hold: the models take the string
    "99999999999999999999" for an int, and an INTEGER column on PostgreSQL holds 32 bits. Refuse
    it; the transaction was rolled back, so nothing changed."""
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) != "22003":
        raise exc  # any other data error is a bug: a logged 500
    return _problem(
        Refusal(
            "value_out_of_range",
            "A number in the request is too large for the server to store.",
            422,
        )
    )


def _database_unavailable(_request: Request, exc: Exception) -> Response:
    """The database refused a connection (at its max_connections, restarting), dropped one, gave
    none in time, or broke a deadlock: the transaction was rolled back, nothing was written, and
    the same request sent again is applied once. Any other database error is a bug: a 500."""
    if not _unavailable(exc):
        raise exc
    orig = getattr(exc, "orig", None) or exc
    log.warning("database unavailable, answered 503: %s", (str(orig).splitlines() or ["?"])[0])
    refusal = Refusal(
        "database_unavailable",
        "The server cannot reach its database just now. Nothing was lost; try again.",
        503,
    )
    response = _problem(refusal)
    response.headers["Retry-After"] = "2"
    return response


# SQLSTATE classes of a database that is away or busy, not of a wrong statement: connection
# exception, insufficient resources, operator intervention (shutdown), transaction rollback.
_UNAVAILABLE_STATES = ("08", "53", "57", "40")
# SQLite's own: another writer held the file too long, the disk failed or filled.
_UNAVAILABLE_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL")


def _unavailable(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated or exc.statement is None:
        return True  # no connection in time, no write turn, a connection that broke or none made
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return str(name).startswith(_UNAVAILABLE_SQLITE)
    state = getattr(orig, "sqlstate", None)
    return state is None or state[:2] in _UNAVAILABLE_STATES  # None: failed before any answer


def _server_error(_request: Request, _exc: Exception) -> Response:
    """A bug: the body keeps the problem shape and says nothing about the server's insides."""
    return _problem(
        Refusal(
            "server_error",
            "The server failed while answering. Try again; if it keeps failing, call IT.",
            500,
        )
    )


def _problem(refusal: Refusal) -> Response:
    return api.raw(refusal.status, problem_json(refusal))


SEAL_SECONDS = 60.0


@asynccontextmanager
async def _sealing(app: FastAPI) -> AsyncIterator[None]:
    """While serving, sign a checkpoint of the audit chain's head every minute."""
    svc: ExecutionService = app.state.service

    async def loop() -> None:
        while True:
            await asyncio.to_thread(svc.seal_audit)
            await asyncio.sleep(SEAL_SECONDS)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class ExecutionAPI(FastAPI):
    """The app, with an OpenAPI document that says what the server really answers."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = contract(super().openapi())
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        # Outside even Starlette's error middleware, so a 500 carries its request id and is
        # counted like any other answer (kiosk/server/observe.py).
        return observe.Observe(super().build_middleware_stack(), self.routes, self.state.observed)


def create_app(svc: ExecutionService, settings: ServerSettings | None = None) -> FastAPI:
    """The API over `svc`; `settings` give /metrics its token and /ready its patience."""
    app = ExecutionAPI(title="Station kiosk execution API", version=__version__, lifespan=_sealing)
    app.state.service = svc
    app.state.observed = _observed(svc, settings)
    app.include_router(api.health)
    app.include_router(observe.ops)
    app.include_router(api.router)
    app.include_router(integration_api.routes(settings))  # ERP, MES, QMS; MQTT
    app.include_router(board_api.router)
    app.include_router(documents_api.router)  # documents at revision
    app.include_router(evidence_api.router)  # photos and files as evidence
    app.add_exception_handler(Refusal, api.refusal_response)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _out_of_range)  # SQLite
    app.add_exception_handler(DataError, _out_of_range)  # PostgreSQL: numeric_value_out_of_range
    for unavailable in (OperationalError, NoConnectionInTime, StoreError):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _server_error)
    # Inside the guard: a delivery it takes is strict JSON already.
    app.add_middleware(DeliveryLane)
    # Outermost but for the error middleware: hostile input never reaches a route.
    app.add_middleware(RequestGuard, max_upload=_upload_limit(svc))
    return app


def _upload_limit(svc: ExecutionService) -> int | None:
    """An evidence upload may be as large as the file store takes, plus the form around it:
    the file store itself refuses a file over the limit, in words on the phone's page."""
    try:
        return svc.files.max_bytes + 1024 * 1024
    except Refusal:
        return None


def _observed(svc: ExecutionService, settings: ServerSettings | None) -> observe.Observed:
    token = settings.metrics_token if settings is not None else None
    return observe.Observed(
        metrics=HttpMetrics(),
        plant=PlantCollector(svc.store),
        metrics_token=token.get_secret_value() if token is not None else None,
        ready_timeout=settings.ready_timeout if settings is not None else 5.0,
    )


# --- the OpenAPI document ---------------------------------------------------------------------------

PROBLEM_REF = "#/components/schemas/Problem"
STATION_TOKEN = "stationToken"
# The guard stands in front of every route, so every operation may answer these.
GUARD_ANSWERS = {
    "400": "Malformed request (rule `request_malformed`): not strict JSON, a number that is not "
    "finite or beyond 64 bits, a NUL or lone surrogate in a text, too deep, or a control "
    "character in the URL",
    "413": "Request body too large (rule `body_too_large`)",
}


def contract(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI document exact about what the server answers and accepts.

    - every 4xx/5xx answer is `application/problem+json` with the `Problem` schema;
    - every operation documents the guard's 400 and 413, and the guard's limits (RequestGuard);
    - the station token is a bearer security scheme rather than a plain header parameter;
    - the tag of a discriminated union (an action's `kind`) is required, as the server requires it.
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template=_REF_TEMPLATE))
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _document_operation(operation, components)
    _require_discriminators(schemas, schemas)
    guard.describe(schema)
    _drop_unused(schema, ("HTTPValidationError", "ValidationError"))
    return schema


_REF_TEMPLATE = "#/components/schemas/{model}"


def _document_operation(operation: dict[str, Any], components: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    for status, description in GUARD_ANSWERS.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status[0] in "45":
            response["content"] = {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}
    parameters = operation.get("parameters", [])
    token = [
        p for p in parameters if p.get("in") == "header" and p["name"].lower() == "authorization"
    ]
    if token:
        operation["parameters"] = [p for p in parameters if p not in token]
        operation.setdefault("security", []).append({STATION_TOKEN: []})
        components.setdefault("securitySchemes", {})[STATION_TOKEN] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The station token an enrolled station got at enrollment.",
        }
        if not operation["parameters"]:
            del operation["parameters"]


def _require_discriminators(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _require_discriminators(item, schemas)
        return
    if not isinstance(node, dict):
        return
    tag = node.get("discriminator")
    if isinstance(tag, dict) and isinstance(tag.get("propertyName"), str):
        refs = list(tag.get("mapping", {}).values())
        refs += [v["$ref"] for v in node.get("oneOf", []) if isinstance(v, dict) and "$ref" in v]
        for ref in refs:
            variant = schemas.get(str(ref).rsplit("/", 1)[-1])
            if isinstance(variant, dict):
                required = variant.setdefault("required", [])
                if tag["propertyName"] not in required:
                    required.append(tag["propertyName"])
    for child in node.values():
        _require_discriminators(child, schemas)


def _drop_unused(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas = schema["components"]["schemas"]
    for name in names:
        kept = {k: v for k, v in schema.items() if k != "components"}
        others = {k: v for k, v in schemas.items() if k != name}
        if name in schemas and f'/{name}"' not in json.dumps([kept, others]):
            del schemas[name]
