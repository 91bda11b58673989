"""The ASGI application of the reference execution API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from kiosk import __version__
from kiosk.rules import Refusal
from kiosk.server import api, demo
from kiosk.server.idempotency import problem_json
from kiosk.server.security import PlantSecret
from kiosk.server.service import ExecutionService
from kiosk.server.store import Store


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    secret_file: Path
    demo: bool = False


def open_service(config: ServerConfig) -> ExecutionService:
    """Open the store (creating the schema if new) and seed the demo plant when asked and empty."""
    store = Store.open(config.database_url)
    svc = ExecutionService(store, PlantSecret.load_or_create(config.secret_file))
    if config.demo and store.is_empty():
        demo.seed(svc)
    return svc


def _invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    refusal = Refusal("request_invalid", "The request is not valid: " + "; ".join(parts), 422)
    return api.raw(422, problem_json(refusal))


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


def create_app(svc: ExecutionService) -> FastAPI:
    app = FastAPI(title="Station kiosk execution API", version=__version__, lifespan=_sealing)
    app.state.service = svc
    app.include_router(api.health)
    app.include_router(api.router)
    app.add_exception_handler(Refusal, api.refusal_response)
    app.add_exception_handler(RequestValidationError, _invalid)
    return app
