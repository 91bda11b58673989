"""Deviations on the real store (SQLite, and PostgreSQL when KIOSK_TEST_DATABASE_URL is set): each
rule broken on purpose says why and changes nothing (not approved yet, expired, used up, outside
its scope, raised wrong); once approved by signature a value relies on it, and the as-built (JSON
and PDF) names the deviation; `kiosk audit verify` re-derives it and catches it tampered with."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select, update

from kiosk import rules
from kiosk.client import projection
from kiosk.rules import Refusal
from kiosk.server import audit, deviations, erp, integration, pdf, printable
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Action,
    ApproveDeviation,
    Deviation,
    RaiseDeviation,
    ReleaseHold,
    Scope,
)
from tests.helpers import (
    ServiceFloor,
    count,
    creds,
    item_of,
    kiosk,
    needs_tool,
    record_count,
    snapshot,
    step_of,
)

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

SUBSTITUTE = {"item": "Bracket forging lot", "substitute": "7741-300",
              "reason": "Ti forging accepted for the first articles (concession C-120)."}  # fmt: skip


@pytest.fixture
def floor(service: ExecutionService) -> ServiceFloor:
    return ServiceFloor(service)


def raised(service: ExecutionService, **fields: Any) -> Deviation:
    with service.store.begin() as conn:
        return deviations.raise_deviation(
            conn, RaiseDeviation.model_validate(fields), "Sam Patel", service.clock()
        )


def approve(floor: ServiceFloor, number: str, who: str = "sam", on: str = "TRV-1001") -> Action:
    return ApproveDeviation(
        actor_id=floor.ids["sam"], traveler=on, deviation=number, credentials=creds(who)
    )


def refused(floor: ServiceFloor, action: Action) -> tuple[str | None, str]:
    """Refuse `action` and check that nothing about the traveler or the records changed."""
    before = snapshot(floor.service, action.traveler), count(floor.service, t.deviations)
    problem = floor.refuse(action)
    assert (snapshot(floor.service, action.traveler), count(floor.service, t.deviations)) == (
        before
    ), problem
    return problem.rule, problem.detail


def lot(floor: ServiceFloor, traveler: str, code: str = "LOT-C300", who: str = "ana") -> Action:
    trav = floor.service.traveler(traveler)
    return floor.record(who, trav, "10.1", "Bracket forging lot", code)


def verified(service: ExecutionService) -> None:
    with service.store.read() as conn:
        verdict = audit.verify(conn)
    assert verdict.ok, verdict.reason


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[timedelta]]:
    """Move the rules' clock (what `acting_day` calls today) forward by the delta appended."""
    ahead: list[timedelta] = [timedelta(0)]

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # noqa: ANN401 - datetime's own signature
            return datetime.now(tz) + ahead[-1]

    monkeypatch.setattr(rules, "datetime", Clock)
    yield ahead


# --- a substitute lot: not approved, approved, used up, outside its scope ---------------------------


def test_a_substitute_lot_waits_for_approval_then_is_used_once(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    dev = raised(service, part_number="7741-220", units=1, **SUBSTITUTE)
    assert (dev.number, dev.status, dev.approvals) == ("DEV-0003", "raised", ())
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))

    assert refused(floor, lot(floor, "TRV-1001")) == (
        "deviation_not_approved", "DEV-0003 is not approved yet."
    )  # fmt: skip
    # Approving is quality's, by signature: an inspector's badge and PIN are refused.
    rule, detail = refused(floor, approve(floor, dev.number, who="ivy"))
    assert rule == "role_not_allowed" and "Ivy Chen may not approve DEV-0003" in detail
    done = floor.do(approve(floor, dev.number))
    assert done.message.startswith("DEV-0003 approved by Sam Patel, in effect: DEV-0003: ")
    (approval,) = next(d for d in done.traveler.deviations if d.number == dev.number).approvals
    assert (approval.printed_name, approval.meaning) == ("Sam Patel", "approved")
    assert refused(floor, approve(floor, dev.number))[0] == "deviation_approved"

    recorded = floor.do(lot(floor, "TRV-1001"))
    assert recorded.message == "Bracket forging lot: LOT-C300 recorded, under DEV-0003."
    entry = item_of(step_of(recorded.traveler, "10.1"), "Bracket forging lot").latest
    assert entry is not None and entry.deviation == "DEV-0003"
    mine = next(d for d in recorded.traveler.deviations if d.number == "DEV-0003")
    assert mine.used_by == ("TRV-1001",)
    # The same traveler again uses no second unit.
    assert floor.do(lot(floor, "TRV-1001")).traveler.deviations[-1].used_by == ("TRV-1001",)

    # Another traveler of the part: the one unit is gone.
    floor.do(ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1003", credentials=creds("sam")))
    floor.do(floor.start("ben", service.traveler("TRV-1003"), "10.1"))
    assert refused(floor, lot(floor, "TRV-1003", who="ben")) == (
        "deviation_used_up", "DEV-0003 is used up: 1 of 1 units."
    )  # fmt: skip
    assert floor.do(lot(floor, "TRV-1003", "LOT-A101", "ben")).traveler.status.value == "in_work"
    verified(service)


def test_a_deviation_outside_its_scope_accepts_nothing(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    dev = raised(service, travelers=["TRV-1003"], units=5, **SUBSTITUTE)
    floor.do(ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1003", credentials=creds("sam")))
    floor.do(approve(floor, dev.number, on="TRV-1003"))
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    # Not on TRV-1001: the plain wrong-part refusal, and it cannot be approved from there.
    rule, detail = refused(floor, lot(floor, "TRV-1001"))
    assert rule == "wrong_part" and "only under an approved deviation" in detail
    assert refused(floor, approve(floor, dev.number)) == (
        "not_found", f"{dev.number} does not apply to TRV-1001."
    )  # fmt: skip
    assert [d.number for d in service.traveler("TRV-1001").deviations] == []


def test_an_expired_deviation_stops_applying(
    floor: ServiceFloor, service: ExecutionService, later: list[timedelta]
) -> None:
    last = service.clock().date() + timedelta(days=3)
    dev = raised(service, part_number="7741-220", until=last.isoformat(), **SUBSTITUTE)
    floor.do(approve(floor, dev.number))
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    later.append(timedelta(days=4))
    assert refused(floor, lot(floor, "TRV-1001")) == (
        "deviation_expired", f"{dev.number} expired on {last:%Y-%m-%d}."
    )  # fmt: skip
    later.append(timedelta(days=3))  # its last day is still good
    assert floor.do(lot(floor, "TRV-1001")).message.endswith(f"under {dev.number}.")


def test_a_second_approver_from_the_plant_config(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    with service.store.begin() as conn:
        erp.load(conn, erp.PlantImport.model_validate(
            {"quality": {"second_approver": "supervisor", "deviation_second_approver": "supervisor"}}
        ))  # fmt: skip
    dev = raised(service, part_number="7741-220", units=2, **SUBSTITUTE)
    assert dev.approval_role == "supervisor"
    first = floor.do(approve(floor, dev.number))
    assert "takes effect with its second approval (supervisor)" in first.message
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    assert refused(floor, lot(floor, "TRV-1001")) == (
        "deviation_not_approved",
        f"{dev.number} is not approved yet: it needs its second approval (supervisor).",
    )
    assert refused(floor, approve(floor, dev.number))[0] == "same_person"  # Sam again
    assert refused(floor, approve(floor, dev.number, who="ivy"))[0] == "role_not_allowed"
    assert floor.do(approve(floor, dev.number, who="raj")).traveler.deviations[-1].status == (
        "approved"
    )
    assert floor.do(lot(floor, "TRV-1001")).message.endswith(f"under {dev.number}.")
    verified(service)


# --- widened limits: the demo's DEV-0001, relied on in the as-built ---------------------------------


def test_a_value_inside_widened_limits_relies_on_the_deviation_in_the_as_built(
    floor: ServiceFloor, service: ExecutionService, tmp_path: Path
) -> None:
    floor.work("ana", "TRV-1002", "20.1")
    trav = floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.2")).traveler
    (dev,) = rules.step_deviations(trav, step_of(trav, "20.2"))
    assert rules.deviation_text(dev).startswith("DEV-0001: upper limit 0.08 until ")
    flat = "Mounting face flatness"
    over = floor.do(floor.record("ana", trav, "20.2", flat, "0.09"))
    assert "OUT OF TOLERANCE" in over.message  # beyond even the deviation's limit
    done = floor.do(floor.record("ana", over.traveler, "20.2", flat, "0.07"))
    assert done.message.endswith("recorded, in tolerance (0–0.05 mm), under DEV-0001.")
    entry = item_of(step_of(done.traveler, "20.2"), flat).latest
    assert entry is not None and (entry.passed, entry.deviation) == (True, "DEV-0001")

    with service.store.read() as conn:
        made = printable.read(conn, "TRV-1002")
    relied = [(v.entry.value, v.entry.deviation) for v in made.record.values if v.item == flat]
    assert relied == [("0.09", None), ("0.07", "DEV-0001")]
    assert [d.number for d in made.record.deviations] == ["DEV-0001"]
    assert json.loads(made.json)["deviations"][0]["approvals"][0]["printed_name"] == "Sam Patel"
    verified(service)
    needs_tool("pdftotext", package="poppler-utils")
    path = tmp_path / "as-built.pdf"
    path.write_bytes(pdf.render(made))
    text = " ".join(
        subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
        .stdout.decode()
        .split()
    )
    assert "0.07 under DEV-0001" in text
    assert "DEV-0001: upper limit 0.08" in text and "Signed APPROVED by Sam Patel" in text


def test_an_unapproved_deviation_leaves_a_measurement_failing_and_says_why(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    dev = raised(service, travelers=["TRV-1001"], steps=["10.2"], item="Bushing bore diameter",
                 upper=12.72, units=1, reason="Reamer worn; bore accepted to 12.72 mm.")  # fmt: skip
    floor.work("ana", "TRV-1001", "10.1")
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.2")).traveler
    done = floor.do(floor.record("ana", trav, "10.2", "Bushing bore diameter", "12.715"))
    assert done.message.endswith(f"OUT OF TOLERANCE (12.69–12.71 mm). {dev.number} is not "
                                 "approved yet.")  # fmt: skip
    entry = item_of(step_of(done.traveler, "10.2"), "Bushing bore diameter").latest
    assert entry is not None and (entry.passed, entry.deviation) == (False, None)
    assert done.traveler.deviations[-1].used_by == ()


def test_the_station_projects_the_same_rules(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    """The station's projection relies on the deviation as the server does, and shows an
    approval at once."""
    floor.work("ana", "TRV-1002", "20.1")
    trav = floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.2")).traveler
    ana, sam = (floor.service.login(floor.station, b).person for b in ("10001", "30001"))
    ctx = projection.Context(ana, None, "DEMO-01", "ASSEMBLY", datetime.now(UTC), -1)
    action = floor.record("ana", trav, "20.2", "Mounting face flatness", "0.071")
    shown = projection.project(trav, action, ctx)
    entry = item_of(step_of(shown, "20.2"), "Mounting face flatness").latest
    assert entry is not None and (entry.passed, entry.deviation) == (True, "DEV-0001")
    assert shown.deviations[0].used_by == ("TRV-1002",)
    dev = raised(service, part_number="7741-220", units=1, **SUBSTITUTE)
    fresh = service.traveler("TRV-1002")
    signed = projection.Context(sam, sam, "DEMO-01", "ASSEMBLY", datetime.now(UTC), -2)
    after = projection.project(fresh, approve(floor, dev.number, on="TRV-1002"), signed)
    assert rules.find_deviation(after, dev.number).status == "approved"
    with pytest.raises(Refusal) as why:
        projection.project(after, approve(floor, dev.number, on="TRV-1002"), signed)
    assert why.value.rule == "deviation_approved"


# --- raising: the API and the CLI, bad input refused whole ------------------------------------------


BAD = [
    ({"units": 1, "item": "Bracket forging lot", "substitute": "X", "reason": "why"},
     422, "deviation_scope_missing"),
    ({"part_number": "7741-220", "units": 1, "item": "Fastener torque", "reason": "why"},
     422, "deviation_departure_unclear"),
    ({"part_number": "7741-220", "item": "Fastener torque", "upper": 14.0, "reason": "why"},
     422, "deviation_reach_missing"),
    ({"part_number": "7741-220", "item": "Fastener torque", "upper": 13.0, "units": 1,
      "reason": "why"}, 422, "deviation_not_wider"),
    ({"part_number": "7741-220", "item": "Fastener torque", "substitute": "X", "units": 1,
      "reason": "why"}, 422, "deviation_kind_mismatch"),
    ({"part_number": "7741-220", "item": "No such item", "upper": 1.0, "units": 1,
      "reason": "why"}, 422, "deviation_item_unknown"),
    ({"travelers": ["TRV-9999"], "item": "Fastener torque", "upper": 14.0, "units": 1,
      "reason": "why"}, 404, "not_found"),
    ({"part_number": "5520-100", "travelers": ["TRV-1001"], "item": "Fastener torque",
      "upper": 14.0, "units": 1, "reason": "why"}, 422, "deviation_scope_mismatch"),
    ({"part_number": "7741-220", "item": "Fastener torque", "upper": 14.0, "until": "2001-01-01",
      "reason": "why"}, 422, "deviation_until_past"),
    ({"part_number": "7741-220", "item": "Fastener torque", "upper": 14.0, "units": 0,
      "reason": "why"}, 422, None),
]  # fmt: skip


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)  # the rules' store runs above
def test_the_api_raises_and_lists_deviations_and_refuses_bad_ones_whole(
    live_server: LiveServer,
) -> None:
    service = live_server.service
    key = integration.add_account(
        service.store, service.secret, "QMS", (Scope.DEVIATIONS,), datetime.now(UTC)
    )
    other = integration.add_account(
        service.store, service.secret, "ERP", (Scope.IMPORT,), datetime.now(UTC)
    )
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=30) as http:
        auth = {"Authorization": f"Bearer {key}"}
        records, rows = record_count(service), count(service, t.deviations)
        for body, status, rule in BAD:
            answer = http.post("/deviations", json=body, headers=auth)
            assert answer.status_code == status, (body, answer.text)
            assert rule is None or answer.json()["rule"] == rule, answer.text
        scope = http.post(
            "/deviations", json=BAD[1][0], headers={"Authorization": f"Bearer {other}"}
        )
        assert (scope.status_code, scope.json()["rule"]) == (403, "scope_missing")
        assert (record_count(service), count(service, t.deviations)) == (records, rows)

        good = {"part_number": "7741-220", "steps": ["20.1"], "item": "Fastener torque",
                "upper": 14.0, "units": 2, "until": (date.today() + timedelta(days=9)).isoformat(),
                "reason": "Alternate sealant"}  # fmt: skip
        made = http.post("/deviations", json=good, headers=auth)
        assert made.status_code == 201, made.text
        assert (made.json()["number"], made.json()["status"]) == ("DEV-0003", "raised")
        assert made.json()["raised_by"] == "QMS (service account)"
        listed = http.get("/deviations", headers=auth).json()
    assert [(d["number"], d["status"]) for d in listed] == [
        ("DEV-0001", "approved"), ("DEV-0002", "raised"), ("DEV-0003", "raised")
    ]  # fmt: skip


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)  # the commands, not the store
def test_the_cli_raises_and_lists(plant: Plant, tmp_path: Path) -> None:
    db = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    done = kiosk("deviation", "raise", "--traveler", "TRV-1001", "--step", "10.2", "--item",
                 "Bushing bore diameter", "--upper", "12.72", "--units", "1", "--reason",
                 "Reamer worn", *db, data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("DEV-0003 raised, not yet in effect")
    listed = kiosk("deviation", "list", "--json", *db, data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    numbers = [(d["number"], d["status"], d["upper"]) for d in json.loads(listed.stdout)]
    assert numbers == [("DEV-0001", "approved", 0.08), ("DEV-0002", "raised", 14.0),
                       ("DEV-0003", "raised", 12.72)]  # fmt: skip


# --- the audit chain ------------------------------------------------------------------------------


def test_verify_catches_a_deviation_widened_behind_the_servers_back(
    service: ExecutionService,
) -> None:
    verified(service)
    with service.store.begin() as conn:
        conn.execute(update(t.deviations).where(t.deviations.c.number == "DEV-0001")
                     .values(upper=0.5))  # fmt: skip
    with service.store.read() as conn:
        verdict = audit.verify(conn)
        dev_id = conn.execute(
            select(t.deviations.c.id).where(t.deviations.c.number == "DEV-0001")
        ).scalar_one()
    assert not verdict.ok
    assert f"deviation {dev_id}: upper is 0.5 in the database but 0.08" in verdict.reason


def test_a_substitute_tool_is_accepted_in_place_of_the_expected_one(
    service: ExecutionService,
) -> None:
    """A tool item naming its tool (`expected`) takes another only under a deviation."""
    trav = service.traveler("TRV-1002")
    step = step_of(trav, "20.1")
    wrench = item_of(step, "Torque wrench").model_copy(update={"expected": "TL-0001"})
    step = step.model_copy(update={"items": (wrench,)})
    (demo,) = [d for d in trav.deviations if d.number == "DEV-0001"]
    spare = demo.model_copy(update={"number": "DEV-0009", "item": "Torque wrench", "upper": None,
                                    "steps": ("20.1",), "substitute": "TL-0003"})  # fmt: skip
    trav = trav.model_copy(update={"deviations": (spare,)})
    today = date.today()
    assert rules.judge(trav, step, wrench, "tl-0003", today).deviation == "DEV-0009"
    assert rules.judge(trav, step, wrench, "TL-0001", today).deviation is None
    with pytest.raises(Refusal) as why:
        rules.judge(trav, step, wrench, "TL-0002", today)
    assert why.value.rule == "value_unexpected"
    unapproved = trav.model_copy(
        update={"deviations": (spare.model_copy(update={"status": "raised"}),)}
    )
    with pytest.raises(Refusal) as why:
        rules.judge(unapproved, step, wrench, "TL-0003", today)
    assert why.value.detail == "DEV-0009 is not approved yet."
