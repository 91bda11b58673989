"""The baseline of scripts/bench_plant.py: the least a FastAPI + SQLAlchemy server can do per value.

One POST inserts one row in its own transaction and answers its id, on the same database and with
the same durability as the kiosk's store, through the store's own engine (kiosk/server/store.py):
SQLite in WAL mode with synchronous=FULL, BEGIN IMMEDIATE and the writer lock, PostgreSQL with
its defaults (synchronous_commit=on), the same connection pool sizes, a sync route run in the
thread pool as the kiosk's routes are, and uvicorn with the same worker count and the kiosk's
log configuration (its access lines included). No auth, no rules, no audit chain, no idempotency
store: what is left is HTTP + JSON + one durable commit.

    .venv/bin/python scripts/_bench_baseline_app.py --database-url URL --port P [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, Text, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.server import logs  # noqa: E402
from kiosk.server.store import create_store_engine, writing  # noqa: E402

metadata = MetaData()
rows = Table(
    "bench_baseline",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("station", Integer, nullable=False),
    Column("value", Text, nullable=False),
    Column("server_time", DateTime(timezone=True), nullable=False),
)


class Value(BaseModel):
    station: int = Field(ge=0)
    value: str = Field(max_length=2000)


class Stored(BaseModel):
    id: int


def engine_for(url: str) -> Engine:
    """The kiosk store's own engine (kiosk/server/store.py): the same drivers, pragmas, BEGIN
    IMMEDIATE, pool sizes and, on SQLite, the same writer lock, so only the work differs."""
    return create_store_engine(url)


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="bench baseline")

    @app.post("/insert", response_model=Stored)
    def insert_one(body: Value) -> Stored:
        with writing(engine), engine.begin() as conn:
            new_id = conn.execute(
                insert(rows)
                .values(station=body.station, value=body.value, server_time=datetime.now(UTC))
                .returning(rows.c.id)
            ).scalar_one()
        return Stored(id=int(new_id))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build() -> FastAPI:
    """App factory for uvicorn workers."""
    return create_app(engine_for(os.environ["BENCH_BASELINE_DATABASE_URL"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    engine = engine_for(args.database_url)
    metadata.create_all(engine)  # once, here, so workers never race to create it
    # As `kiosk serve` (kiosk/server/asgi.py): its formatter, its level, its access lines.
    log_config = logs.configure("text", "info")
    if args.workers <= 1:
        uvicorn.run(
            create_app(engine), host=args.host, port=args.port, log_config=log_config,
            log_level="info",
        )  # fmt: skip
        return
    engine.dispose()
    os.environ["BENCH_BASELINE_DATABASE_URL"] = args.database_url
    uvicorn.run(
        "_bench_baseline_app:build",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        app_dir=str(Path(__file__).resolve().parent),
        log_config=log_config,
        log_level="info",
    )


if __name__ == "__main__":
    main()
