"""`kiosk serve`: the execution API for many stations, in one or several server processes.

Workers keep no state of their own; everything that must be serial is serialised by the database,
so any number of them can share one PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from kiosk.server.app import ServerConfig, create_app, open_service


def build() -> FastAPI:
    """App factory for uvicorn workers: configuration arrives through the environment."""
    config = ServerConfig(
        database_url=os.environ["KIOSK_DATABASE_URL"],
        secret_file=Path(os.environ["KIOSK_SECRET_FILE"]),
    )
    return create_app(open_service(config))


def serve(config: ServerConfig, *, host: str, port: int, workers: int = 1) -> None:
    # Open (and seed) once in this process, so workers never race to create the schema.
    svc = open_service(config)
    if workers <= 1:
        uvicorn.run(create_app(svc), host=host, port=port, log_level="info")
        return
    svc.store.dispose()
    os.environ["KIOSK_DATABASE_URL"] = config.database_url
    os.environ["KIOSK_SECRET_FILE"] = str(config.secret_file)
    uvicorn.run("kiosk.server.asgi:build", factory=True, host=host, port=port, workers=workers)
