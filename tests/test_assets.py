"""Maintenance work on assets against the real server (SQLite, and PostgreSQL when configured):
a work order on an asset imports through POST /api/v1/import, its task is worked with the same
steps, sign-offs and tools, the asset is in the audit chain (and `kiosk audit verify` catches it
changed), bad asset work orders are refused with a clear message and change nothing, and
`kiosk export history` gives the asset's as-maintained record across its tasks as JSON and PDF."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import update

from kiosk import cli
from kiosk.server import integration, records
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import AssetHistory, Meaning, Scope, TravelerStatus
from tests.helpers import ROOT, ServiceFloor, count

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

COUNTED = (t.work_orders, t.travelers, t.steps, t.assets, t.asset_tasks, t.audit_log)

# A tail number with two task cards, each a traveler with its own copy of the routing.
EXAMPLE = ROOT / "examples/maintenance-on-asset.json"
ORDER: dict[str, Any] = json.loads(EXAMPLE.read_text())["work_orders"][0]


def document(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    order.update(changes)
    return {"work_orders": [order]}


def counts(service: ExecutionService) -> tuple[int, ...]:
    return tuple(count(service, table) for table in COUNTED)


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def key_for(service: ExecutionService, *scopes: Scope) -> dict[str, str]:
    key = integration.add_account(service.store, service.secret, "MRO", scopes, datetime.now(UTC))
    return {"Authorization": f"Bearer {key}"}


def refused(answer: httpx.Response, status: int, rule: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["rule"] == rule, body
    return str(body["detail"])


def test_an_asset_task_imports_is_worked_and_its_asset_is_in_the_chain(
    live_server: LiveServer, http: httpx.Client
) -> None:
    service = live_server.service
    key = key_for(service, Scope.IMPORT, Scope.READ)
    answer = http.post("/api/v1/import", json=document(), headers=key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"]["assets"] == 1 and answer.json()["counts"]["travelers"] == 2

    trav = service.traveler("TRV-8001")
    assert trav.asset is not None and (trav.asset.id, trav.asset.kind.value) == (
        "N512KS",
        "aircraft",
    )
    assert (trav.task, trav.serial, trav.lot, trav.part_number) == (
        "TC-32-11-01",
        None,
        None,
        "MPD-32-11",
    )
    floor = ServiceFloor(service)
    # A scan of the asset's label narrows the queue to its tasks.
    narrowed = service.queue(floor.station, search="n512")
    assert [(r.number, r.asset, r.serial) for r in narrowed] == [
        ("TRV-8001", "N512KS", None),
        ("TRV-8002", "N512KS", None),
    ]

    # The same steps, tools and sign-offs as any traveler.
    floor.work("ana", "TRV-8001", "10.1", {"Attach bolt torque": "12.4"})
    found = {"No cracks or corrosion": "pass", "Findings": "Fittings clean."}
    done = floor.work("ana", "TRV-8001", "10.2", found)
    done = floor.do(floor.sign("ana", done.traveler, "10.2", Meaning.VERIFIED, signer="ivy"))
    assert done.traveler.status is TravelerStatus.COMPLETE

    history = AssetHistory.model_validate_json(
        http.get("/api/v1/assets/n512ks/history", headers=key).content
    )
    assert [(task.traveler.number, task.traveler.status.value) for task in history.tasks] == [
        ("TRV-8001", "complete"),
        ("TRV-8002", "not_started"),
    ]
    first = history.tasks[0]
    assert [(v.item, v.entry.value) for v in first.values] == [
        ("Torque wrench", "TL-0001"),
        ("Attach bolt torque", "12.4"),
        ("No cracks or corrosion", "pass"),
        ("Findings", "Fittings clean."),
    ]
    assert [t.tool for t in first.tools] == ["TL-0001"]
    assert [[s.printed_name for s in step.signatures] for step in first.traveler.steps] == [
        ["Ana Ortiz"],
        ["Ana Ortiz", "Ivy Chen"],
    ]
    assert first.traveler.asset == history.asset and first.traveler.task == "TC-32-11-01"
    missing = http.get("/api/v1/assets/N999XX/history", headers=key)
    assert refused(missing, 404, "not_found") == (
        "Asset N999XX is not in the plant: no maintenance task was imported for it."
    )
    assert http.get("/api/v1/assets/N512KS/history").status_code == 401

    # The same asset again as another kind is refused whole.
    before = counts(service)
    clash = document(
        number="WO-8002",
        asset={"id": " n512ks ", "kind": "equipment", "description": "typo"},  # the same id
        travelers=[{"number": "TRV-8003", "task": "TC-1"}],
    )
    said = refused(http.post("/api/v1/import", json=clash, headers=key), 422, "asset_kind_clash")
    assert said == "asset N512KS is aircraft in the plant, not equipment"
    assert counts(service) == before

    # The asset and its tasks are re-derived from the chain: a change behind the server's back
    # is named.
    with service.store.read() as conn:
        assert records.check(conn) == []
    with service.store.begin() as conn:
        conn.execute(update(t.assets).where(t.assets.c.code == "N512KS").values(kind="equipment"))
        conn.execute(update(t.asset_tasks).where(t.asset_tasks.c.task == "TC-32-11-02").values(
            task="TC-99"
        ))  # fmt: skip
    with service.store.read() as conn:
        named = [f.text for f in records.check(conn)]
    assert any("asset " in f and "kind is 'equipment' in the database" in f for f in named), named
    assert any(f.startswith("maintenance task ") and "'TC-99'" in f for f in named), named


# What is wrong with each, the rule that says so and (part of) what it says.
BAD: list[tuple[dict[str, Any], str, str]] = [
    (
        {"travelers": [{"number": "TRV-8101", "task": "TC-1", "serial": "SN-1"}]},
        "asset_and_serial",
        "work order WO-8001 traveler TRV-8101: a maintenance task on an asset has no serial or "
        "lot: give the asset or serials, not both",
    ),
    (
        {"asset": {"id": "N512KS", "kind": "ship", "description": "x"}},
        "request_invalid",
        "work_orders.0.asset.kind: Input should be 'aircraft' or 'equipment'",
    ),
    (
        {"asset": {"id": "  ", "kind": "aircraft", "description": "x"}},
        "request_invalid",
        "asset id '  ' is not a tail number or equipment id",
    ),
    (
        {"travelers": [{"number": "TRV-8101", "task": " "}]},
        "task_missing",
        "work order WO-8001 traveler TRV-8101: a maintenance task on an asset needs its task "
        "number",
    ),
]


def test_bad_asset_work_orders_are_refused_clearly_and_change_nothing(
    plant: Plant, live_server: LiveServer, http: httpx.Client, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    service = live_server.service
    key = key_for(service, Scope.IMPORT)
    before = counts(service)
    for changes, rule, expected in BAD:
        answer = http.post("/api/v1/import", json=document(**changes), headers=key)
        assert expected in refused(answer, 422, rule), changes
    # A task number on a production work order, through `kiosk import` (in this process).
    production = document(travelers=[{"number": "TRV-8101", "serial": "SN-1", "task": "TC-1"}])
    del production["work_orders"][0]["asset"]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(production))
    where = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    assert cli.main(["import", str(path), *where]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {path}: work order WO-8001 traveler TRV-8101: a task number belongs to a work "
        "order on an asset; nothing was imported\n"
    )
    assert counts(service) == before


def test_the_demo_assets_history_exports_as_json_and_pdf(
    plant: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PRESS-07: the weekly check Ana signed a week ago, and the open quarterly maintenance."""
    where = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    assert cli.main(["export", "history", "press-07", *where]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["asset"] == {
        "id": "PRESS-07",
        "kind": "equipment",
        "description": "Hydraulic bushing press, cell 2",
    }
    tasks = [task["traveler"] for task in record["tasks"]]
    assert [(t["number"], t["task"], t["status"]) for t in tasks] == [
        ("TRV-3001", "PM-07-W", "complete"),
        ("TRV-3002", "PM-07-Q", "not_started"),
    ]
    assert [v["entry"]["value"] for v in record["tasks"][0]["values"]] == [
        "182",
        "pass",
        "TL-0001",
        "12.6",
    ]

    out = tmp_path / "press.pdf"
    assert cli.main(["export", "history", "PRESS-07", "--format", "pdf", "--output", str(out),
                     *where]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(f"wrote {out}: as-maintained record of PRESS-07")
    if shutil.which("pdftotext") is None or shutil.which("pdfdetach") is None:
        pytest.fail("poppler missing: apt-get install poppler-utils (.ci/run does)")
    pages = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, check=True).stdout
    text = " ".join(pages.decode().split())
    for expected in (
        "As-maintained record PRESS-07",
        "PM-07-W TRV-3001 WO-3001 Weekly press check complete Ana Ortiz",
        "PM-07-Q TRV-3002 WO-3002 Quarterly maintenance not started",
        "As-built record TRV-3001",
        "Asset PRESS-07 (equipment) Hydraulic bushing press, cell 2 Task PM-07-W",
        "Signed PERFORMED by Ana Ortiz",
        "As-built record TRV-3002",
    ):
        assert expected in text, expected

    # The attachment is the record the PDF was made from: each task's printed digest is that
    # of its entry there, in canonical form.
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(out)], check=True)
    attached = json.loads((tmp_path / "as-maintained.json").read_bytes())
    for task in attached["tasks"]:
        canonical = json.dumps(task, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert f"Record SHA-256 {hashlib.sha256(canonical.encode()).hexdigest()}" in text

    gone = tmp_path / "nothing.pdf"
    assert cli.main(["export", "history", "PRESS-99", "--format", "pdf", "--output", str(gone),
                     *where]) == 3  # fmt: skip
    assert capsys.readouterr().err == (
        "error: Asset PRESS-99 is not in the plant: no maintenance task was imported for it.\n"
    )
    assert not gone.exists()
    assert cli.main(["audit", "verify", *where]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


# --- at the station ---------------------------------------------------------------------------------


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_the_demo_maintenance_task_is_opened_and_worked_at_a_maintenance_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Raj at a MAINTENANCE station: the queue and the traveler show PRESS-07 where a serial
    would be, the asset's id typed opens its task, and the lock-out step is started,
    acknowledged and signed off like any step."""
    from textual.widgets import DataTable

    from kiosk.screens.traveler import TravelerScreen
    from kiosk.wire import StepStatus
    from tests.helpers import step_of
    from tests.station import burst, running, settle
    from tests.station_helpers import enter_value, sign_with, text_of

    service = live_server.service
    token = live_server.token("MAINT-01", "MAINTENANCE")
    async with running(live_server.url, token, tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "31001")  # Raj Mehta, qualified everywhere
        table = app.screen.query_one("#queue", DataTable)
        assert [tuple(str(c) for c in table.get_row_at(r))[:3] for r in range(table.row_count)] == [
            ("TRV-3002", "PRESS-07", "PRESS-07")  # traveler, part (the asset), serial (the asset)
        ]
        await enter_value(pilot, "press-07")  # the id on the press's label opens its task
        screen = app.screen
        assert isinstance(screen, TravelerScreen)
        header = text_of(screen.query_one("#traveler-header"))
        assert "TRV-3002 · WO-3002 · PRESS-07 Quarterly maintenance · PRESS-07 task PM-07-Q" in header
        await pilot.press("f2")
        await settle(pilot)
        await enter_value(pilot, "ack")
        await pilot.press("f5")
        await settle(pilot)
        await sign_with(pilot, "31001", "3131")
    step = step_of(service.traveler("TRV-3002"), "10.1")
    assert step.status is StepStatus.COMPLETE
    assert [s.printed_name for s in step.signatures] == ["Raj Mehta"]
