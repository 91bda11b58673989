"""The integration API as ERP, MES and QMS use it: service accounts with scoped keys made by the real
`kiosk integration` command, POST /api/v1/import over loopback to the real server, and the event
feed GET /api/v1/events read back after real work on the floor, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from kiosk import cli
from kiosk.server import events, integration
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Disposition,
    DispositionNcr,
    Meaning,
    RaiseNcr,
    ReleaseHold,
    Scope,
    StartStep,
)
from tests.helpers import ROOT, ServiceFloor, count, creds, item_of, kiosk, person_ids, step_of

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

EXAMPLE = ROOT / "examples" / "work-orders.json"
TABLES = (t.work_orders, t.travelers, t.steps, t.data_items, t.tools, t.material_lots)


def add_account(service: ExecutionService, name: str, *scopes: Scope) -> str:
    return integration.add_account(service.store, service.secret, name, scopes, datetime.now(UTC))


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def problem(response: httpx.Response, status: int, rule: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["rule"] == rule, body
    return str(body["detail"])


def plant_counts(service: ExecutionService) -> tuple[int, ...]:
    return tuple(count(service, table) for table in (*TABLES, t.audit_log))


def document(**work_order: Any) -> dict[str, Any]:
    """A one-traveler work order at ASSEMBLY: a measured step, then an acknowledged one."""
    order = {
        "number": "WO-7001",
        "part_number": "7001-1",
        "part_name": "Shim plate",
        "quantity": 1,
        "travelers": [{"number": "TRV-7001", "serial": "SN-7001"}],
        "routing": [
            {
                "number": "10",
                "name": "Fit",
                "work_center": "ASSEMBLY",
                "steps": [
                    {
                        "number": "10.1",
                        "title": "Fit shim",
                        "instructions": "Fit the shim and measure the gap.",
                        "items": [
                            {
                                "label": "Gap",
                                "kind": "measurement",
                                "unit": "mm",
                                "nominal": 1.0,
                                "lower": 0.9,
                                "upper": 1.1,
                            }
                        ],
                    },
                    {
                        "number": "10.2",
                        "title": "Close out",
                        "instructions": "Confirm the plate is marked.",
                        "items": [{"label": "Marked", "kind": "acknowledgement"}],
                    },
                ],
            }
        ],
        **work_order,
    }
    return {"work_orders": [order]}


# --- service accounts, through the real command -----------------------------------------------------


@pytest.mark.slow
def test_an_admin_adds_lists_and_revokes_a_service_account(
    plant: Plant,
    live_server: LiveServer,
    http: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    added = kiosk(
        "integration", "add", "ERP", "--scope", "import,events", *where, data_dir=tmp_path
    )
    assert added.returncode == 0, added.stderr
    key = added.stdout.split("key ", 1)[1].split()[0]
    assert key.startswith("kiosk_sa_") and "shown only now" in added.stderr
    # Only a keyed hash is kept: the key is nowhere in the database.
    with live_server.service.store.read() as conn:
        row = conn.execute(select(t.service_accounts)).one()
    assert key not in json.dumps([str(v) for v in row])
    assert row.key_hmac != hashlib.sha256(key.encode()).hexdigest()

    assert http.get("/api/v1/events", headers=bearer(key)).status_code == 200
    # The rest in this process (a child costs seconds here): the same command, its exit codes.
    assert cli.main(["integration", "list", "--json", *where]) == 0
    listed = capsys.readouterr().out
    accounts = json.loads(listed)
    assert [(a["name"], a["scopes"], a["revoked_at"]) for a in accounts] == [
        ("ERP", ["import", "events"], None)
    ]
    assert key not in listed

    assert cli.main(["integration", "add", "ERP", "--scope", "read", *where]) == 2
    assert "exists: revoke it first" in capsys.readouterr().err
    assert cli.main(["integration", "add", "QMS", "--scope", "import,write", *where]) == 2
    assert "unknown scope write: choose from import, read, events" in capsys.readouterr().err

    assert cli.main(["integration", "revoke", "ERP", *where]) == 0
    assert "no longer works" in capsys.readouterr().out
    problem(http.get("/api/v1/events", headers=bearer(key)), 401, "service_account_unknown")
    assert cli.main(["integration", "list", *where]) == 0
    assert re.search(r"^ERP +import,events +added .* revoked ", capsys.readouterr().out, re.M)
    assert cli.main(["integration", "revoke", "ERP", *where]) == 2
    assert "no service account ERP in use here" in capsys.readouterr().err


def test_each_route_needs_its_own_scope(service: ExecutionService, http: httpx.Client) -> None:
    watcher = add_account(service, "MES", Scope.EVENTS)
    importer = add_account(service, "ERP", Scope.IMPORT)
    reader = add_account(service, "QMS", Scope.READ)
    before = plant_counts(service)
    detail = problem(
        http.post("/api/v1/import", json=document(), headers=bearer(watcher)), 403, "scope_missing"
    )
    assert detail == (
        "Service account MES may not import work orders, tools and material lots: that needs "
        "scope import, and it has events."
    )
    problem(http.get("/api/v1/events", headers=bearer(importer)), 403, "scope_missing")
    problem(http.get("/api/v1/as-built/TRV-1001", headers=bearer(watcher)), 403, "scope_missing")
    assert plant_counts(service) == before

    assert http.get("/api/v1/events", headers=bearer(watcher)).status_code == 200
    as_built = http.get("/api/v1/as-built/trv-1001", headers=bearer(reader))
    assert as_built.status_code == 200 and as_built.json()["traveler"]["number"] == "TRV-1001"
    problem(http.get("/api/v1/as-built/TRV-0000", headers=bearer(reader)), 404, "not_found")


def test_a_service_account_is_not_a_station_nor_a_person(
    service: ExecutionService, live_server: LiveServer, http: httpx.Client
) -> None:
    """TRUST-MODEL.md: the key names a system; no station route takes it, so it can never act or
    sign in anyone's name; and a station token opens no integration route."""
    key = add_account(service, "ERP", *Scope)
    station = bearer(live_server.token())
    ana = person_ids(service)["ana"]
    trav = service.traveler("TRV-1001")
    start = StartStep(actor_id=ana, traveler="TRV-1001", step_id=trav.steps[0].id)
    before = plant_counts(service)
    for method, path, body in [
        ("POST", "/api/v1/actions", {"action": start.model_dump(mode="json")}),
        ("POST", "/api/v1/login", {"badge": "10001"}),
        ("POST", "/api/v1/verify", creds("ana").model_dump()),
        ("GET", "/api/v1/queue", None),
    ]:
        answer = http.request(
            method, path, json=body, headers={**bearer(key), "Idempotency-Key": "k" * 12}
        )
        problem(answer, 401, "station_not_enrolled")
    assert plant_counts(service) == before

    for path in ("/api/v1/events", "/api/v1/as-built/TRV-1001"):
        problem(http.get(path, headers=station), 401, "service_account_unknown")
    problem(http.get("/api/v1/events"), 401, "service_account_unknown")
    problem(
        http.post("/api/v1/import", json=document(), headers=station),
        401,
        "service_account_unknown",
    )
    assert plant_counts(service) == before


# --- POST /api/v1/import ------------------------------------------------------------------------------


def test_the_same_document_twice_changes_nothing_the_second_time(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "ERP", Scope.IMPORT))
    sent = json.loads(EXAMPLE.read_text())
    first = http.post("/api/v1/import", json=sent, headers=key)
    assert first.status_code == 200, first.text
    done = first.json()
    assert done["imported"] is True
    assert done["counts"]["work_orders"] == 1 and done["counts"]["travelers"] == 2
    assert service.traveler("TRV-6001").work_order == "WO-6001"
    after_first = plant_counts(service)

    # The same document, spaced and ordered differently: still the same document.
    respaced = json.dumps(dict(reversed(list(sent.items()))), indent=4)
    second = http.post(
        "/api/v1/import", content=respaced, headers={**key, "Content-Type": "application/json"}
    )
    assert second.status_code == 200, second.text
    again = second.json()
    assert again["imported"] is False and again["sha256"] == done["sha256"]
    assert again["imported_at"] == done["imported_at"] and again["counts"] == done["counts"]
    assert again["message"].startswith("This document was already imported at ")
    assert again["message"].endswith("nothing changed.")
    assert plant_counts(service) == after_first


def test_a_document_clashing_with_the_plant_is_refused_whole(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "ERP", Scope.IMPORT))
    before = plant_counts(service)
    clash = document(travelers=[{"number": "TRV-7001"}, {"number": "TRV-1001"}])
    clash["tools"] = [
        {"code": "TL-7777", "description": "Feeler gauge", "calibration_due": "2030-01-01"}
    ]
    detail = problem(http.post("/api/v1/import", json=clash, headers=key), 409, "import_conflict")
    assert detail == "Nothing was imported: traveler TRV-1001 is already in the plant."
    assert plant_counts(service) == before


MISFITS: list[tuple[dict[str, Any], str]] = [
    ({"number": "W" * 41}, "work_orders[0].number is 41 characters long, at most 40 fit"),
    ({"quantity": 2**31}, "work_orders[0].quantity must be from 1 to 2147483647"),
    ({"number": "  "}, "work_orders[0].number is blank"),
    (
        {"travelers": [{"number": "TRV-7001"}, {"number": "TRV-7001"}]},
        "traveler TRV-7001 appears 2 times in it",
    ),
]


def test_a_document_that_does_not_fit_is_refused_before_anything_is_written(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "ERP", Scope.IMPORT))
    before = plant_counts(service)
    for change, detail in MISFITS:
        answer = http.post("/api/v1/import", json=document(**change), headers=key)
        said = problem(answer, 422, "import_invalid")
        assert said == f"The document cannot be imported: {detail}.", change
    assert plant_counts(service) == before


def test_a_document_may_make_steps_up_to_the_limit(
    service: ExecutionService, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each traveler copies the routing: 3 travelers of 2 steps make 6 steps."""
    key = bearer(add_account(service, "ERP", Scope.IMPORT))
    three = [{"number": f"TRV-700{n}"} for n in (1, 2, 3)]
    monkeypatch.setattr(integration, "MAX_STEPS", 5)
    before = plant_counts(service)
    refused = http.post("/api/v1/import", json=document(travelers=three), headers=key)
    detail = problem(refused, 422, "import_invalid")
    assert detail.endswith("it makes 6 steps, at most 5 in one document: split it.")
    assert plant_counts(service) == before
    monkeypatch.setattr(integration, "MAX_STEPS", 6)
    assert (
        http.post("/api/v1/import", json=document(travelers=three), headers=key).status_code == 200
    )


def test_texts_and_numbers_at_their_limits_are_imported(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "ERP", Scope.IMPORT))
    longest = "W" * 40  # work_orders.number is 40 characters
    answer = http.post(
        "/api/v1/import", json=document(number=longest, quantity=2**31 - 1), headers=key
    )
    assert answer.status_code == 200, answer.text
    assert service.traveler("TRV-7001").work_order == longest


# --- GET /api/v1/events -----------------------------------------------------------------------------


def work_through_an_ncr(service: ExecutionService) -> None:
    """TRV-7001 from start to finish: out of tolerance, NCR, rework, hold released, completed."""
    floor = ServiceFloor(service)
    ids = floor.ids
    trav = service.traveler("TRV-7001")
    floor.do(floor.start("ana", trav, "10.1"))
    trav = floor.do(floor.record("ana", trav, "10.1", "Gap", "1.5")).traveler
    gap = item_of(step_of(trav, "10.1"), "Gap")
    floor.do(
        RaiseNcr(actor_id=ids["ana"], traveler="TRV-7001", item_id=gap.id,
                 description="Gap 1.5 mm, over 1.1", defect_code="DIM")
    )  # fmt: skip
    ncr = service.traveler("TRV-7001").ncrs[0].number
    floor.do(
        DispositionNcr(actor_id=ids["ana"], traveler="TRV-7001", ncr=ncr,
                       disposition=Disposition.REWORK, instructions="Thinner shim, re-measure",
                       credentials=creds("sam"))
    )  # fmt: skip
    floor.do(ReleaseHold(actor_id=ids["ana"], traveler="TRV-7001", credentials=creds("sam")))
    trav = floor.do(
        floor.record("ana", service.traveler("TRV-7001"), "10.1", "Gap", "1.0")
    ).traveler
    floor.do(floor.sign("ana", trav, "10.1"))
    for step in service.traveler("TRV-7001").steps:
        if step.number in ("10.1", "10.2"):
            continue
        values = {"Rework done as instructed": "acknowledged", "Gap (re-measure)": "1.02"}
        floor.work("ana", "TRV-7001", step.number, values)
        trav = service.traveler("TRV-7001")
        floor.do(floor.sign("ana", trav, step.number, Meaning.VERIFIED, signer="ivy"))
    floor.work("ben", "TRV-7001", "10.2", {"Marked": "acknowledged"})


def test_the_feed_tells_what_happened_in_order_and_pages_without_loss(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "ERP", Scope.IMPORT, Scope.EVENTS))
    start = http.get("/api/v1/events", params={"after": 10**6}, headers=key).json()
    head = start["head"]
    assert start["events"] == [] and start["next_cursor"] == 10**6
    assert http.post("/api/v1/import", json=document(), headers=key).status_code == 200
    work_through_an_ncr(service)

    page = http.get("/api/v1/events", params={"after": head}, headers=key).json()
    assert page["more"] is False and page["next_cursor"] == page["head"] > head
    seen = [(e["event"], e["step"]) for e in page["events"]]
    assert seen[:5] == [
        ("value_out_of_tolerance", "10.1"),
        ("ncr_raised", "10.1"),
        ("hold_placed", None),
        ("ncr_dispositioned", "10.1"),
        ("hold_released", None),
    ]
    rework = [s for _, s in seen[6:-2]]
    assert seen[5] == ("step_completed", "10.1") and len(rework) == 1  # the rework step
    # The traveler completes with its last step, not when 10.1 had been its last open one.
    assert seen[-2:] == [("step_completed", "10.2"), ("traveler_completed", "10.2")]
    first = page["events"][0]
    assert first["value"] == "1.5" and first["unit"] == "mm" and first["upper"] == 1.1
    assert first["actor"] == "Ana Ortiz" and first["station"] == "DEMO-01"
    assert first["topic"] == "plant/ASSEMBLY/DEMO-01/TRV-7001/value_out_of_tolerance"
    assert page["events"][3]["disposition"] == "rework"
    assert all(e["traveler"] == "TRV-7001" for e in page["events"])

    # One record at a time, following next_cursor: the same events, none twice.
    cursor, paged = head, []
    while True:
        step = http.get("/api/v1/events", params={"after": cursor, "limit": 1}, headers=key).json()
        paged += step["events"]
        cursor = step["next_cursor"]
        if not step["more"]:
            break
    assert paged == page["events"]


FEED_LIMITS: list[tuple[dict[str, int], bool]] = [
    ({"limit": 1}, True),
    ({"limit": events.FEED_MAX}, True),
    ({"limit": 0}, False),
    ({"limit": events.FEED_MAX + 1}, False),
    ({"after": 0}, True),
    ({"after": 2**31 - 1}, True),
    ({"after": -1}, False),
    ({"after": 2**31}, False),
]


def test_the_feed_limits_are_checked_at_their_edges(
    service: ExecutionService, http: httpx.Client
) -> None:
    key = bearer(add_account(service, "MES", Scope.EVENTS))
    for params, accepted in FEED_LIMITS:
        answer = http.get("/api/v1/events", params=params, headers=key)
        if accepted:
            assert answer.status_code == 200, (params, answer.text)
        else:
            (name,) = params
            assert f"query.{name}: " in problem(answer, 422, "request_invalid"), params


def test_the_openapi_document_states_the_service_account_scheme(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["serviceAccountKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, method in [("/api/v1/import", "post"), ("/api/v1/events", "get")]:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"serviceAccountKey": []}]
        assert {"401", "403", "422"} <= set(operation["responses"])
