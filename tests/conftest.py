"""Shared fixtures: a real store seeded with the demo plant, and the real server on a loopback port.

The demo plant is seeded once per test session into a template (a SQLite file, or a PostgreSQL
template database when KIOSK_TEST_DATABASE_URL is set); each test gets its own copy of it.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from kiosk.client import ExecutionClient
from kiosk.server import audit, demo
from kiosk.server.app import ServerConfig, create_app, open_service
from kiosk.server.service import ExecutionService
from kiosk.server.store import normalize_url

PG_URL = os.environ.get("KIOSK_TEST_DATABASE_URL")

# Keep a developer's own settings and terminal quirks out of every test.
for name in (
    "KIOSK_SERVER_URL",
    "KIOSK_CONFIG_FILE",
    "KIOSK_DATABASE_URL",
    "NO_COLOR",
    "TEXTUAL_THEME",
):
    os.environ.pop(name, None)
os.environ["TEXTUAL_ANIMATIONS"] = "none"


def _backends() -> list[object]:
    reason = (
        "PostgreSQL tests need KIOSK_TEST_DATABASE_URL (./dev test sets it when one is running)"
    )
    return [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[pytest.mark.postgres, pytest.mark.skipif(PG_URL is None, reason=reason)],
        ),
    ]


@dataclass
class Template:
    backend: str
    secret_file: Path
    source: str  # SQLite file path or PostgreSQL template database name
    day: date
    """The UTC day it was seeded: the demo's dates (calibrations, certifications) count from it."""


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plant")


def _admin_engine() -> Engine:
    assert PG_URL is not None
    return create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")


def _pg_url(database: str) -> str:
    assert PG_URL is not None
    return (
        make_url(normalize_url(PG_URL)).set(database=database).render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def templates(session_dir: Path) -> Iterator[dict[str, list[Template]]]:
    made: dict[str, list[Template]] = {}
    yield made
    for tmpl in made.get("postgresql", []):
        with _admin_engine().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{tmpl.source}"'))


def _template(backend: str, templates: dict[str, list[Template]], session_dir: Path) -> Template:
    """The demo plant seeded today: a session that runs past midnight seeds it again, or the
    dates the demo counts from today (an expired certification's) are a day off."""
    today = datetime.now(UTC).date()
    made = templates.setdefault(backend, [])
    if made and made[-1].day == today:
        return made[-1]
    # Each template has its own witness.
    secret = session_dir / f"plant-secret-{backend}-{len(made)}"
    if backend == "sqlite":
        path = session_dir / f"template-{uuid.uuid4().hex[:8]}.db"
        svc = open_service(ServerConfig(f"sqlite:///{path}", secret, demo=True))
        svc.store.dispose()
        made.append(Template(backend, secret, str(path), today))
    else:
        name = f"kiosk_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with _admin_engine().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        svc = open_service(ServerConfig(_pg_url(name), secret, demo=True))
        svc.store.dispose()
        made.append(Template(backend, secret, name, today))
    return made[-1]


@dataclass
class Plant:
    """A private copy of the demo plant for one test."""

    database_url: str
    secret_file: Path

    def service(self) -> ExecutionService:
        return open_service(ServerConfig(self.database_url, self.secret_file))


@pytest.fixture(params=_backends())
def plant(
    request: pytest.FixtureRequest,
    templates: dict[str, list[Template]],
    session_dir: Path,
    tmp_path: Path,
) -> Iterator[Plant]:
    backend = request.param
    tmpl = _template(backend, templates, session_dir)
    secret = _own_secret(tmpl, tmp_path)
    if backend == "sqlite":
        target = tmp_path / "plant.db"
        with sqlite3.connect(tmpl.source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        yield Plant(f"sqlite:///{target}", secret)
        return
    name = f"kiosk_t_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl.source}"'))
    yield Plant(_pg_url(name), secret)
    with _admin_engine().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _own_secret(tmpl: Template, tmp_path: Path) -> Path:
    """The plant secret and its witness file, copied: a plant's witness is its own."""
    secret = tmp_path / "plant-secret"
    shutil.copy(tmpl.secret_file, secret)
    witness = audit.witness_path(tmpl.secret_file)
    if witness.exists():
        shutil.copy(witness, audit.witness_path(secret))
    kept = tmpl.secret_file.with_name("files")  # the demo's drawings, beside its secret
    if kept.exists() and not secret.with_name("files").exists():
        shutil.copytree(kept, secret.with_name("files"))
    return secret


@pytest.fixture
def service(plant: Plant) -> Iterator[ExecutionService]:
    svc = plant.service()
    yield svc
    svc.store.dispose()


@dataclass
class LiveServer:
    url: str
    service: ExecutionService

    def token(self, station: str = demo.DEMO_STATION, work_center: str = demo.WORK_CENTER) -> str:
        return self.service.local_station_token(station, work_center)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(service: ExecutionService) -> Iterator[LiveServer]:
    """The real reference server on a loopback port, in a thread of the test process."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    yield LiveServer(f"http://127.0.0.1:{port}", service)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[ExecutionClient]:
    async with ExecutionClient(live_server.url, live_server.token()) as api:
        yield api

