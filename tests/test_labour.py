"""Labour time, as a plant notices it: start, pause, resume and sign-off clock people on and off
steps; sign-out and the idle lock clock them off with that reason; one person is on one step at
a time unless the plant allows more; the as-built shows the intervals; `kiosk export labour`
gives them to the ERP as CSV or JSON; `kiosk audit verify` catches an edited interval."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import PauseStep, SignOut, StationConfig
from tests.conftest import Plant
from tests.helpers import ROOT, ServiceFloor, creds, snapshot, step_of

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The server's clock, moved on by the test: labour minutes are exact."""

    def __init__(self, service: ExecutionService) -> None:
        self.now = NOON
        service.clock = lambda: self.now

    def wait(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def labour_of(service: ExecutionService, traveler: str) -> list[tuple[str, str, float, str | None]]:
    with service.store.read() as conn:
        record = erp.as_built(conn, traveler)
    return [(i.step, i.person, i.minutes, i.end_reason) for i in record.labour]


def test_start_pause_resume_and_sign_off_make_labour_intervals(service: ExecutionService) -> None:
    clock, floor = Clock(service), ServiceFloor(service)
    trav = service.traveler("TRV-1001")
    floor.do(floor.start("ana", trav, "10.1"))
    clock.wait(20)
    paused = floor.do(PauseStep(actor_id=floor.ids["ana"], traveler="TRV-1001",
                                step_id=step_of(trav, "10.1").id))  # fmt: skip
    assert paused.traveler.labour == ()
    clock.wait(10)  # a break: not labour
    resumed = floor.do(floor.start("ana", paused.traveler, "10.1"))
    assert [(e.person, e.step, e.since) for e in resumed.traveler.labour] == [
        ("Ana Ortiz", "10.1", NOON + timedelta(minutes=30))
    ]
    clock.wait(5)
    floor.work("ana", "TRV-1001", "10.1")  # records its values and signs it
    assert labour_of(service, "TRV-1001") == [
        ("10.1", "Ana Ortiz", 20.0, "paused"),
        ("10.1", "Ana Ortiz", 5.0, "signed"),
    ]


def test_a_crew_shares_a_step_and_a_pause_clocks_off_only_who_pauses(
    service: ExecutionService,
) -> None:
    clock, floor = Clock(service), ServiceFloor(service)
    trav = service.traveler("TRV-1001")
    floor.do(floor.start("ana", trav, "10.1"))
    clock.wait(3)
    joined = floor.do(floor.start("ben", trav, "10.1"))
    assert joined.message == "Ben Okafor clocked on step 10.1."
    assert {e.person for e in joined.traveler.labour} == {"Ana Ortiz", "Ben Okafor"}
    clock.wait(7)
    step_id = step_of(trav, "10.1").id
    left = floor.do(PauseStep(actor_id=floor.ids["ben"], traveler="TRV-1001", step_id=step_id))
    assert left.message == "Ben Okafor clocked off step 10.1; others are still on it."
    assert step_of(left.traveler, "10.1").status.value == "in_work"  # Ana works on
    assert [e.person for e in left.traveler.labour] == ["Ana Ortiz"]
    assert labour_of(service, "TRV-1001")[1] == ("10.1", "Ben Okafor", 7.0, "paused")


def test_one_person_is_on_one_step_at_a_time_unless_the_plant_allows_more(
    service: ExecutionService,
) -> None:
    Clock(service)
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    other = service.traveler("TRV-1002")  # its operation 10 is done: 20.1 may start
    before = snapshot(service, "TRV-1002")
    refused = floor.refuse(floor.start("ana", other, "20.1"))
    assert refused.rule == "clocked_on_elsewhere"
    assert refused.detail == (
        "Ana Ortiz is clocked on TRV-1001 step 10.1: pause it there before starting "
        "TRV-1002 step 20.1."
    )
    assert snapshot(service, "TRV-1002") == before  # nothing changed

    station = floor.station
    admin = service.admin_session(station, creds("ada"))
    service.set_station_config(
        station, admin.token, station.name, StationConfig(steps_per_person=2)
    )
    started = floor.do(floor.start("ana", other, "20.1"))
    assert [e.step for e in started.traveler.labour] == ["20.1"]
    with pytest.raises(ValidationError, match="less than or equal to 10"):
        StationConfig.model_validate({"steps_per_person": 11})  # the limit's boundary: 10


def test_sign_out_and_idle_lock_clock_off_but_a_new_badge_does_not(
    service: ExecutionService,
) -> None:
    clock, floor = Clock(service), ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    ana_session = floor.signed_in
    assert ana_session is not None
    clock.wait(4)
    floor.do(floor.start("ben", service.traveler("TRV-1001"), "10.1"))  # Ben badges in after Ana
    assert {e.person for e in service.traveler("TRV-1001").labour} == {"Ana Ortiz", "Ben Okafor"}
    clock.wait(6)
    ben_session = floor.signed_in
    assert ben_session is not None
    service.logout(floor.station, SignOut(session=ben_session[1], reason="idle_lock"))
    assert [e.person for e in service.traveler("TRV-1001").labour] == ["Ana Ortiz"]
    # Ben's badge-in ended Ana's session (a shared console) but not her labour; she badges in
    # again later and signs out, which clocks her off.
    ana = service.login(floor.station, creds("ana").badge)
    clock.wait(2)
    service.logout(floor.station, SignOut(session=ana.session, reason="sign_out"))
    assert labour_of(service, "TRV-1001") == [
        ("10.1", "Ana Ortiz", 12.0, "sign_out"),
        ("10.1", "Ben Okafor", 6.0, "idle_lock"),
    ]
    assert service.traveler("TRV-1001").labour == ()


def run_kiosk(plant: Plant, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args, "--database-url", plant.database_url,
         "--secret-file", str(plant.secret_file)],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
        env={**os.environ, "KIOSK_DATA_DIR": str(cwd), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def test_export_labour_gives_the_erp_csv_and_json(plant: Plant, tmp_path: Path) -> None:
    """The demo's labour history on TRV-1002: Ana's start, break, resume and two sign-offs."""
    done = run_kiosk(plant, tmp_path, "export", "labour", "--since", "2000-01-01")
    assert done.returncode == 0, done.stderr
    every = list(csv.DictReader(io.StringIO(done.stdout)))
    # The demo's maintenance task on PRESS-07 (a week ago) comes first; then TRV-1002's.
    assert [(r["traveler"], r["step"], r["minutes"]) for r in every[:2]] == [
        ("TRV-3001", "10.1", "6.0"),
        ("TRV-3001", "10.2", "6.0"),
    ]
    rows = every[2:]
    assert [(r["traveler"], r["step"], r["person"], r["end_reason"]) for r in rows] == [
        ("TRV-1002", "10.1", "Ana Ortiz", "paused"),
        ("TRV-1002", "10.1", "Ana Ortiz", "signed"),
        ("TRV-1002", "10.2", "Ana Ortiz", "signed"),
    ]
    assert [float(r["minutes"]) for r in rows] == [12.0, 9.0, 12.0]
    assert all(r["work_order"] == "WO-5001" and r["work_center"] == "ASSEMBLY" for r in rows)
    start, end = (datetime.fromisoformat(rows[0][c]) for c in ("started_at", "ended_at"))
    assert end - start == timedelta(minutes=12) and start.tzinfo is not None

    as_json = run_kiosk(plant, tmp_path, "export", "labour", "--since", "2000-01-01",
                        "--format", "json", "--output", "labour.json")  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.startswith("wrote labour.json: 5 labour intervals since 2000-01-01")
    assert [i["minutes"] for i in json.loads((tmp_path / "labour.json").read_text())] == [
        6.0, 6.0, 12.0, 9.0, 12.0
    ]  # fmt: skip

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = run_kiosk(plant, tmp_path, "export", "labour", "--since", tomorrow)
    assert later.stdout.splitlines()[1:] == []  # the header alone: nothing ended since

    bad = run_kiosk(plant, tmp_path, "export", "labour", "--since", "last tuesday")
    assert bad.returncode == 2
    assert "'last tuesday' is not a date: give YYYY-MM-DD or an ISO 8601 time" in bad.stderr


def test_an_edited_labour_interval_is_caught_by_audit_verify(plant: Plant, tmp_path: Path) -> None:
    service = plant.service()
    try:
        with service.store.begin() as conn:  # someone pads a shift in the database
            conn.execute(
                update(t.labour_intervals)
                .where(t.labour_intervals.c.id == 3)
                .values(ended_at=datetime.now(UTC) + timedelta(hours=3))
            )
    finally:
        service.store.dispose()
    done = run_kiosk(plant, tmp_path, "audit", "verify")
    assert done.returncode == 1
    assert "labour interval 3: ended_at is" in done.stdout
