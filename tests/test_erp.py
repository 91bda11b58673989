"""The ERP side through the real `kiosk` command: import work orders with routings from JSON, and
export a traveler's as-built record (values, who, when, signatures, tools, material, NCRs)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    ApproveDisposition,
    AsBuilt,
    Disposition,
    DispositionNcr,
    ItemKind,
    Meaning,
    RaiseNcr,
    ReleaseHold,
    StepStatus,
    TravelerStatus,
)
from tests.helpers import ROOT, ServiceFloor, count, creds, item_of, kiosk, step_of

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow  # the real command, as a child process

EXAMPLE = "examples/work-orders.json"
COUNTED = (
    t.work_orders,
    t.travelers,
    t.operations,
    t.steps,
    t.data_items,
    t.tools,
    t.material_lots,
    t.audit_log,
)
HEX64 = re.compile(r"^[0-9a-f]{64}$")

VALUES = {
    "Hinge pin stock lot": "lot-b200",
    "Material certificate checked": "ack",
    "Reamer serial": "RM-6350-117",
    "Pin bore": "6.358",
    "Torque wrench": "TL-0100",
    "Nut torque": "6.1",
    "Cotter pin fitted": "pass",
    "Free rotation, no burrs": "pass",
    "Inspection notes": "Rotates freely, legs bent back.",
}


def counts(service: ExecutionService) -> dict[str, int]:
    return {table.name: count(service, table) for table in COUNTED}


def run(plant: Plant, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = kiosk(
        *args,
        "--database-url",
        plant.database_url,
        "--secret-file",
        str(plant.secret_file),
        data_dir=tmp_path,
    )
    return done.returncode, done.stdout, done.stderr


def example_tool_due() -> date:
    return date.fromisoformat(
        json.loads((ROOT / EXAMPLE).read_text())["tools"][0]["calibration_due"]
    )


def within_calibration(service: ExecutionService) -> ExecutionService:
    """The same plant on a clock that runs 60 days before the example tool's calibration is due,
    so this test means the same thing whatever today's date is."""
    start = datetime.combine(example_tool_due() - timedelta(days=60), datetime.min.time(), UTC)
    start += timedelta(hours=9)
    zero = time.monotonic()
    return ExecutionService(
        service.store,
        service.secret,
        clock=lambda: start + timedelta(seconds=time.monotonic() - zero),
    )


def test_the_example_file_is_a_valid_import_using_every_item_kind() -> None:
    plant = erp.read_import(ROOT / EXAMPLE)
    (order,) = plant.work_orders
    assert len(order.travelers) == 2 and len(order.routing) == 2
    kinds = {item.kind for op in order.routing for step in op.steps for item in step.items}
    assert kinds == set(ItemKind)
    assert len(plant.tools) == 1 and len(plant.material_lots) == 1


def test_import_then_export_the_as_built_record(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    before = counts(service)
    code, out, err = run(plant, tmp_path, "import", EXAMPLE)
    assert (code, err) == (0, "")
    assert out == "imported 1 work orders, 2 travelers, 8 steps, 1 tools, 1 material lots\n"
    after = counts(service)
    assert after["travelers"] == before["travelers"] + 2
    assert after["steps"] == before["steps"] + 8
    assert after["audit_log"] == before["audit_log"] + 1

    # Each traveler has its own copy of the routing.
    first, second = service.traveler("TRV-6001"), service.traveler("TRV-6002")
    assert (
        [s.number for s in first.steps]
        == ["10.1", "10.2", "20.1", "20.2"]
        == [s.number for s in second.steps]
    )
    assert {s.id for s in first.steps}.isdisjoint({s.id for s in second.steps})
    assert (first.work_order, first.part_name, first.serial) == (
        "WO-6001",
        "Hinge fitting",
        "SN-8810-0001",
    )
    assert first.status is TravelerStatus.NOT_STARTED
    assert step_of(first, "20.2").inspection

    # Work TRV-6001 through the service, with one out-of-tolerance bore and its NCR.
    floor = ServiceFloor(within_calibration(service))
    ids = floor.ids
    floor.work("ana", "TRV-6001", "10.1", VALUES)
    trav = floor.do(floor.start("ana", service.traveler("TRV-6001"), "10.2")).traveler
    trav = floor.do(
        floor.record("ana", trav, "10.2", "Reamer serial", VALUES["Reamer serial"])
    ).traveler
    trav = floor.do(floor.record("ana", trav, "10.2", "Pin bore", "6.372")).traveler
    bore = item_of(step_of(trav, "10.2"), "Pin bore")
    trav = floor.do(
        RaiseNcr(
            actor_id=ids["ana"],
            traveler="TRV-6001",
            item_id=bore.id,
            description="Pin bore 6.372 mm, over 6.365",
            defect_code="DIM-OS",
        )
    ).traveler
    ncr = trav.ncrs[0].number
    floor.do(
        DispositionNcr(
            actor_id=ids["ana"],
            traveler="TRV-6001",
            ncr=ncr,
            disposition=Disposition.USE_AS_IS,
            rationale="Within the drawing's allowable",
            credentials=creds("sam"),
        )
    )
    floor.do(ApproveDisposition(actor_id=ids["ana"], traveler="TRV-6001", ncr=ncr, credentials=creds("raj")))
    floor.do(ReleaseHold(actor_id=ids["ana"], traveler="TRV-6001", credentials=creds("sam")))
    trav = floor.do(
        floor.record("ana", service.traveler("TRV-6001"), "10.2", "Pin bore", "6.364")
    ).traveler
    floor.do(floor.sign("ana", trav, "10.2"))
    floor.work("ben", "TRV-6001", "20.1", VALUES)
    floor.work("ben", "TRV-6001", "20.2", VALUES)
    floor.do(
        floor.sign("ben", service.traveler("TRV-6001"), "20.2", Meaning.VERIFIED, signer="ivy")
    )

    code, out, err = run(plant, tmp_path, "export", "as-built", "trv-6001")
    assert (code, err) == (0, "")
    record = AsBuilt.model_validate_json(out)
    built = record.traveler
    assert built.number == "TRV-6001" and built.status is TravelerStatus.COMPLETE
    assert all(s.status is StepStatus.COMPLETE for s in built.steps)

    # Every value ever recorded, superseded ones too, with who and when.
    entries = [
        (v.step, v.item, v.entry.value, v.entry.passed, v.entry.recorded_by) for v in record.values
    ]
    assert entries == [
        ("10.1", "Hinge pin stock lot", "LOT-B200", None, "Ana Ortiz"),
        ("10.1", "Material certificate checked", "acknowledged", True, "Ana Ortiz"),
        ("10.2", "Reamer serial", "RM-6350-117", None, "Ana Ortiz"),
        ("10.2", "Pin bore", "6.372", False, "Ana Ortiz"),
        ("10.2", "Pin bore", "6.364", True, "Ana Ortiz"),
        ("20.1", "Torque wrench", "TL-0100", None, "Ben Okafor"),
        ("20.1", "Nut torque", "6.1", True, "Ben Okafor"),
        ("20.1", "Cotter pin fitted", "pass", True, "Ben Okafor"),
        ("20.2", "Free rotation, no burrs", "pass", True, "Ben Okafor"),
        ("20.2", "Inspection notes", "Rotates freely, legs bent back.", None, "Ben Okafor"),
    ]
    with service.store.begin() as conn:
        stored = (
            conn.execute(
                select(t.recorded_values.c.id).where(
                    t.recorded_values.c.item_id.in_([i.id for s in built.steps for i in s.items])
                )
            )
            .scalars()
            .all()
        )
    assert sorted(v.entry.id for v in record.values) == sorted(stored)
    assert all(
        v.entry.station == "DEMO-01" and v.entry.server_time.tzinfo is not None
        for v in record.values
    )
    times = [v.entry.server_time for v in record.values]
    assert times == sorted(times)

    # Signature manifestations: printed name, meaning, time, station, content hash.
    manifests = [(s.number, g.printed_name, g.meaning) for s in built.steps for g in s.signatures]
    assert manifests == [
        ("10.1", "Ana Ortiz", Meaning.PERFORMED),
        ("10.2", "Ana Ortiz", Meaning.PERFORMED),
        ("20.1", "Ben Okafor", Meaning.PERFORMED),
        ("20.2", "Ben Okafor", Meaning.PERFORMED),
        ("20.2", "Ivy Chen", Meaning.VERIFIED),
    ]
    for step in built.steps:
        for sig in step.signatures:
            assert (
                HEX64.match(sig.content_hash)
                and sig.station == "DEMO-01"
                and sig.server_time.tzinfo
            )

    assert [(u.tool, u.calibration_due, u.step, u.recorded_by) for u in record.tools] == [
        ("TL-0100", example_tool_due(), "20.1", "Ben Okafor")
    ]
    assert [(m.lot, m.part_number, m.step, m.recorded_by) for m in record.material] == [
        ("LOT-B200", "8810-011", "10.1", "Ana Ortiz")
    ]
    (ncr_out,) = built.ncrs
    assert (
        ncr_out.number,
        ncr_out.step_number,
        ncr_out.status,
        ncr_out.disposition,
        ncr_out.raised_by,
    ) == (ncr, "10.2", "dispositioned", Disposition.USE_AS_IS, "Ana Ortiz")
    assert ncr_out.description == "Pin bore 6.372 mm, over 6.365"
    assert item_of(step_of(built, "10.2"), "Pin bore").ncr_number == ncr

    # The other traveler of the work order is untouched.
    code, out, _ = run(plant, tmp_path, "export", "as-built", "TRV-6002")
    untouched = AsBuilt.model_validate_json(out)
    assert (untouched.values, untouched.material, untouched.tools, untouched.traveler.ncrs) == (
        (),
        (),
        (),
        (),
    )


def test_importing_the_same_file_twice_is_refused_and_imports_nothing(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    assert run(plant, tmp_path, "import", EXAMPLE)[0] == 0
    before = counts(service)
    code, out, err = run(plant, tmp_path, "import", EXAMPLE)
    assert code != 0
    assert out == ""
    assert err == f"error: {EXAMPLE}: an entry already exists in the plant; nothing was imported\n"
    assert counts(service) == before


def test_a_file_clashing_late_imports_nothing_at_all(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    """A new tool and lot first, then a work order that already exists: all or nothing."""
    document = json.loads((ROOT / EXAMPLE).read_text())
    document["tools"][0]["code"] = "TL-0199"
    document["material_lots"][0]["code"] = "LOT-B299"
    document["work_orders"][0]["number"] = "WO-5001"  # the demo plant's bracket work order
    document["work_orders"][0]["travelers"] = [{"number": "TRV-6101"}]
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps(document))
    before = counts(service)
    code, _, err = run(plant, tmp_path, "import", str(clash))
    assert code != 0
    assert "an entry already exists in the plant; nothing was imported" in err
    assert counts(service) == before
    with service.store.begin() as conn:
        assert conn.execute(select(t.tools).where(t.tools.c.code == "TL-0199")).first() is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json at all", "Invalid JSON: key must be a string at line 1 column 2"),
        ("", "Invalid JSON: EOF while parsing"),
        ('{"work_orders": [{"number": "WO-1"}]}', "work_orders.0.part_number: Field required"),
        ('{"work_orders": [], "machines": []}', "machines: Extra inputs are not permitted"),
        (
            '{"tools": [{"code": "TL-1", "description": "x", "calibration_due": "soon"}]}',
            "calibration_due",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_a_clear_message(
    plant: Plant, service: ExecutionService, tmp_path: Path, content: str, expected: str
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text(content)
    before = counts(service)
    code, out, err = run(plant, tmp_path, "import", str(garbage))
    assert code != 0
    assert out == ""
    assert err.startswith(f"error: {garbage}: ")
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err  # one line for the person at the console
    assert "Traceback" not in err and "pydantic.dev" not in err
    assert counts(service) == before


def test_a_missing_file_and_an_unknown_traveler_are_refused_clearly(
    plant: Plant, tmp_path: Path
) -> None:
    code, _, err = run(plant, tmp_path, "import", str(tmp_path / "nowhere.json"))
    assert code != 0
    assert err == f"error: {tmp_path / 'nowhere.json'}: No such file or directory\n"
    code, out, err = run(plant, tmp_path, "export", "as-built", "TRV-9999")
    assert code != 0 and out == ""
    assert err == "error: Traveler TRV-9999 was not found.\n"
