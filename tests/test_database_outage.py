"""The database away, and the connections a server may hold: a station is told, in words, that
the server cannot reach its database and that nothing was lost (503, Retry-After), and the same
action sent again once it is back is applied once; a wrong statement stays a 500; `kiosk serve`
keeps to its share of PostgreSQL's connections and warns when its settings would not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kiosk.client import BadResponse, ExecutionClient
from kiosk.server import demo
from kiosk.server.settings import ServerSettings
from kiosk.server.store import normalize_url
from kiosk.wire import ActionEnvelope
from tests.conftest import PG_URL, LiveServer, _admin_engine
from tests.helpers import Floor, kiosk, new_key, person_ids, raw_http, values_of
from tests.ops_helpers import database_args, kiosk_serve

if TYPE_CHECKING:
    from tests.conftest import Plant

STATIONS = 40
Test = TypeVar("Test", bound=Callable[..., object])


def on_postgresql(test: Test) -> Test:
    """Only on PostgreSQL: its connections, and its going away, are what such a test is about."""
    test = pytest.mark.skipif(PG_URL is None, reason="needs KIOSK_TEST_DATABASE_URL")(test)
    test = pytest.mark.postgres(test)
    marked: Test = pytest.mark.parametrize("plant", ["postgresql"], indirect=True)(test)
    return marked


@dataclass
class Seen:
    statuses: list[int] = field(default_factory=list)
    most: int = 0
    """The most connections PostgreSQL counted to the plant's database at one sample."""


@contextmanager
def database_away(database_url: str) -> Iterator[None]:
    """The plant's PostgreSQL database as a restart or a failover leaves it for a while: every
    connection to it cut, and no new one accepted; then back."""
    name = make_url(normalize_url(database_url)).database
    with _admin_engine().connect() as admin:
        admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        admin.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
        try:
            yield
        finally:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


@on_postgresql
async def test_an_action_while_the_database_is_away_is_refused_503_then_applied_once(
    live_server: LiveServer, plant: Plant
) -> None:
    token = live_server.token()
    async with ExecutionClient(live_server.url, token) as station:
        floor = Floor(station, person_ids(live_server.service))
        trav = (await floor.start_step("ana", "TRV-1001", "10.1")).traveler
        record = floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A100")
        action = await floor.proven(record)
        key = new_key()
        body = ActionEnvelope(action=action).model_dump(mode="json")

        with database_away(plant.database_url):
            async with raw_http(live_server.url, token) as raw:
                answer = await raw.post(
                    "/api/v1/actions", json=body, headers={"Idempotency-Key": key}
                )
            with pytest.raises(BadResponse) as refused:
                await station.perform(action, key=key)  # what the station shows
            ready = httpx.get(f"{live_server.url}/ready", timeout=15)

        # Back: the same request is applied, once, and a second retry gets the same answer.
        first = await station.perform(action, key=key)
        again = await station.perform(action, key=key)

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["rule"] == "database_unavailable"
    words = "The server cannot reach its database just now. Nothing was lost; try again."
    assert answer.json()["detail"] == words
    assert (refused.value.status, refused.value.rule, refused.value.detail) == (
        503,
        "database_unavailable",
        words,
    )
    assert ready.status_code == 503
    assert first == again
    assert values_of(live_server.service, record.item_id) == ["LOT-A100"]


async def test_a_wrong_statement_is_a_server_error_not_an_unavailable_database(
    live_server: LiveServer,
) -> None:
    """A bug (here: a table gone) must reach IT as a failure, not pass for a passing outage."""
    with live_server.service.store.begin() as conn:
        conn.execute(text("ALTER TABLE tools RENAME TO tools_gone"))
    async with raw_http(live_server.url, live_server.token()) as raw:
        answer = await raw.get("/api/v1/tools/TL-0003")

    assert answer.status_code == 500
    assert answer.json()["rule"] == "server_error"
    assert "retry-after" not in answer.headers


# --- the connections each process holds ------------------------------------------------------------


@pytest.mark.parametrize(("given", "taken"), [("0", False), ("1", True), ("1000", True)])
def test_database_connections_from_one_up_to_a_thousand(given: str, taken: bool) -> None:
    if taken:
        assert ServerSettings(database_connections=int(given)).database_connections == int(given)
    else:
        with pytest.raises(ValueError, match="greater than or equal to 1"):
            ServerSettings(database_connections=int(given))


def test_serve_refuses_no_database_connections_in_words(tmp_path: Path) -> None:
    done = kiosk("serve", "--demo", "--database-connections", "0", data_dir=tmp_path)

    assert done.returncode != 0
    assert "database_connections: Input should be greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr


@on_postgresql
def test_serve_warns_when_its_workers_could_want_more_connections_than_postgres_gives(
    plant: Plant, tmp_path: Path
) -> None:
    args = database_args(plant.database_url, plant.secret_file)
    with kiosk_serve(
        *args, "--workers", "2", "--database-connections", "60", tmp_path=tmp_path
    ) as s:
        warned = s.text()
    with kiosk_serve(*args, "--workers", "2", tmp_path=tmp_path) as s:
        quiet = s.text()

    assert "2 worker(s) x 60 database connections could want 120" in warned
    assert "lower --database-connections or raise max_connections" in warned
    assert "database connections could want" not in quiet


@on_postgresql
def test_a_process_never_holds_more_connections_than_it_is_given(
    plant: Plant, tmp_path: Path
) -> None:
    """Forty stations at once against a process given 3 connections: all are answered, and
    PostgreSQL never sees more than 3 connections from it."""
    args = database_args(plant.database_url, plant.secret_file)
    name = make_url(normalize_url(plant.database_url)).database
    assert name is not None
    with kiosk_serve(*args, "--database-connections", "3", tmp_path=tmp_path) as server:
        token = _station_token(plant)
        seen = _most_connections_during(server.url, token, name)

    assert all(status == 200 for status in seen.statuses), seen.statuses
    assert 1 <= seen.most <= 3


def _station_token(plant: Plant) -> str:
    svc = plant.service()
    try:
        return svc.local_station_token("LOAD-01", demo.WORK_CENTER)
    finally:
        svc.store.dispose()


def _most_connections_during(url: str, token: str, database: str) -> Seen:
    seen = Seen()

    def count() -> int:
        with _admin_engine().connect() as admin:
            return int(
                admin.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": database},
                ).scalar_one()
            )

    async def station(raw: httpx.AsyncClient) -> None:
        for _ in range(5):
            seen.statuses.append((await raw.get("/api/v1/queue")).status_code)

    async def load() -> None:
        async with raw_http(url, token) as raw:
            raw.timeout = httpx.Timeout(30)
            stations = asyncio.gather(*(station(raw) for _ in range(STATIONS)))
            while not stations.done():
                seen.most = max(seen.most, await asyncio.to_thread(count))
                await asyncio.sleep(0.02)
            await stations

    asyncio.run(load())
    return seen
