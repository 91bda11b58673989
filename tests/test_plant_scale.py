"""`kiosk serve` as real processes: the demo server answers, and several server processes on one
database apply concurrent, duplicated deliveries from several stations exactly once, keeping the
audit chain whole (PostgreSQL when KIOSK_TEST_DATABASE_URL is set, SQLite otherwise)."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import func, select

from kiosk.client import ExecutionClient
from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import Action, ActionResult, Meaning, RecordValue, StationConfig, StepStatus
from tests.helpers import (
    Floor,
    ServiceFloor,
    audit_count,
    creds,
    free_port,
    item_of,
    kiosk,
    new_key,
    person_ids,
    server_process,
    step_of,
    wait_until_answers,
)

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow

STATIONS = 4
ACTIONS = 40


def test_kiosk_serve_demo_answers_openapi(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path / 'plant.db'}"
    args = [
        "--demo",
        "--port",
        str(port),
        "--database-url",
        database,
        "--secret-file",
        str(tmp_path / "secret"),
    ]
    with server_process(*args, data_dir=tmp_path, log=tmp_path / "serve.log") as proc:
        wait_until_answers(f"{url}/openapi.json", proc)
        spec = httpx.get(f"{url}/openapi.json", timeout=5).json()
        assert spec["info"]["title"] == "Station kiosk execution API"
        assert {"/api/v1/actions", "/api/v1/travelers/{number}", "/api/v1/enroll"} <= set(
            spec["paths"]
        )
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
        denied = httpx.get(f"{url}/api/v1/queue", timeout=5)
        assert denied.status_code == 401 and denied.json()["rule"] == "station_not_enrolled"
    assert proc.returncode is not None
    # It seeded the demo plant, with a chain that verifies.
    done = kiosk("audit", "verify", "--database-url", database, data_dir=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stdout + done.stderr


def _deliveries(service: ExecutionService) -> list[tuple[int, Action, str]]:
    """40 record_value actions over three in-work items of two travelers, from four stations:
    Ben badged in at LINE-00 and LINE-01, Ana at LINE-02 and LINE-03."""
    floor = ServiceFloor(service)
    trv1001 = floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1")).traveler
    trv2000 = floor.do(floor.start("ben", service.traveler("TRV-2000"), "10.1")).traveler
    hole = step_of(trv2000, "10.1").items[0]
    sessions = []
    for n in range(STATIONS):
        token = service.local_station_token(f"LINE-{n:02d}", "ASSEMBLY")
        badge = "10002" if n < 2 else "10001"
        sessions.append(service.login(service.authenticate(token), badge).session)
    plan: list[tuple[int, Action, str]] = []
    for n in range(ACTIONS):
        action: Action
        if n % 4 in (0, 1):
            value = f"4.8{n:02d}"  # 4.800 .. 4.839 mm: within 4.80–4.86
            action = RecordValue(
                actor_id=floor.ids["ben"], traveler="TRV-2000", item_id=hole.id, value=value
            )
        elif n % 4 == 2:
            lot = ("LOT-A100", "LOT-A101")[n % 8 // 4]
            action = floor.record("ana", trv1001, "10.1", "Bracket forging lot", lot)
        else:
            action = floor.record(
                "ana", trv1001, "10.1", "Kit complete per pick list", "acknowledged"
            )
        station = n % STATIONS
        plan.append((station, floor.with_session(action, sessions[station]), new_key()))
    return plan


def _recorded(service: ExecutionService, item_ids: set[int]) -> Counter[tuple[int, str]]:
    with service.store.begin() as conn:
        found = conn.execute(
            select(t.recorded_values.c.item_id, t.recorded_values.c.value).where(
                t.recorded_values.c.item_id.in_(item_ids)
            )
        ).all()
    return Counter((row.item_id, row.value) for row in found)


async def test_two_server_processes_apply_every_delivery_exactly_once(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    plan = _deliveries(service)
    # Fresh tokens for the same stations (a re-enrollment keeps their person sessions), and one
    # more station for the work on TRV-1002 meanwhile.
    tokens = [service.local_station_token(f"LINE-{n:02d}", "ASSEMBLY") for n in range(STATIONS + 1)]
    # Ana stays clocked on TRV-1001 10.1 while she works TRV-1002 there: two steps at once.
    extra = service.authenticate(tokens[STATIONS])
    admin = service.admin_session(extra, creds("ada"))
    service.set_station_config(extra, admin.token, extra.name, StationConfig(steps_per_person=2))
    ids = person_ids(service)
    ports = free_port(), free_port()
    common = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]

    with ExitStack() as processes:
        # Server A runs two uvicorn workers, server B is a separate `kiosk serve`: three processes.
        servers = [
            processes.enter_context(
                server_process(
                    "--port",
                    str(ports[0]),
                    "--workers",
                    "2",
                    *common,
                    data_dir=tmp_path,
                    log=tmp_path / "a.log",
                )
            ),
            processes.enter_context(
                server_process(
                    "--port", str(ports[1]), *common, data_dir=tmp_path, log=tmp_path / "b.log"
                )
            ),
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, proc in zip(urls, servers, strict=True):
            wait_until_answers(f"{url}/health", proc)

        async with AsyncExitStack() as stack:
            # Each station talks to both servers, as behind a load balancer.
            clients = [
                [await stack.enter_async_context(ExecutionClient(url, token)) for url in urls]
                for token in tokens
            ]

            async def deliver(station: int, action: Action, key: str) -> list[ActionResult]:
                # The same delivery, at the same moment, through both server processes.
                return list(
                    await asyncio.gather(*(c.perform(action, key=key) for c in clients[station]))
                )

            async def meanwhile() -> None:
                # Work and sign TRV-1002 through alternating servers while the deliveries land.
                a, b = (Floor(c, ids) for c in clients[STATIONS])
                await a.work("ana", "TRV-1002", "20.1")
                await b.work("ben", "TRV-1002", "20.2")
                await a.sign_step("ben", "TRV-1002", "20.2", Meaning.VERIFIED, signer="ivy")

            answers, _ = await asyncio.wait_for(
                asyncio.gather(asyncio.gather(*(deliver(*p) for p in plan)), meanwhile()),
                timeout=60,
            )

    # Both processes of a duplicate answered the same, and each key was applied once.
    for pair in answers:
        assert pair[0] == pair[1]
    keys = [key for _, _, key in plan]
    with service.store.begin() as conn:
        stored = conn.execute(
            select(t.idempotency.c.key, func.count())
            .where(t.idempotency.c.key.in_(keys))
            .group_by(t.idempotency.c.key)
        ).all()
    assert sorted(stored) == sorted((key, 1) for key in keys)
    expected: Counter[tuple[int, str]] = Counter()
    for _, action, _ in plan:
        assert isinstance(action, RecordValue)
        expected[(action.item_id, action.value)] += 1  # measurements kept as typed
    assert _recorded(service, {item for item, _ in expected}) == expected
    lots = sum(1 for _, a, _ in plan if isinstance(a, RecordValue) and a.value.startswith("LOT-"))
    assert len(_material(service, "TRV-1001")) == lots

    trv1002 = service.traveler("TRV-1002")
    assert step_of(trv1002, "20.2").status is StepStatus.COMPLETE
    assert item_of(step_of(trv1002, "20.1"), "Torque wrench").latest is not None
    # All in one chain with the TRV-1002 work, which verifies: each value, each consumed lot,
    # re-derived from its audit record.
    done = kiosk("audit", "verify", "--database-url", plant.database_url, data_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok: {audit_count(service)} records\n")

    # Both servers served actions, and server A did start its two worker processes.
    log_a, log_b = (tmp_path / "a.log").read_text(), (tmp_path / "b.log").read_text()
    assert log_a.count("Started server process") == 2, log_a
    assert "POST /api/v1/actions" in log_a and "POST /api/v1/actions" in log_b


def _material(service: ExecutionService, number: str) -> list[str]:
    with service.store.begin() as conn:
        return [m.lot for m in erp.as_built(conn, number).material]
