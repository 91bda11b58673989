"""The audit chain through the real `kiosk audit verify` command, and the schema-version guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete, select, update

from kiosk.server import audit
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.server.store import SchemaTooNew, Store
from kiosk.wire import PauseStep, StartStep
from tests.helpers import ServiceFloor, audit_count, free_port, kiosk, step_of

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow  # every test here runs the real command as a child process


def verify(plant: Plant, tmp_path: Path) -> tuple[int, str, str]:
    """`kiosk audit verify` as on the server host: with the plant secret, so checkpoints count."""
    done = kiosk(
        "audit", "verify", "--database-url", plant.database_url,
        "--secret-file", str(plant.secret_file), data_dir=tmp_path,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def audit_row(service: ExecutionService, seq: int) -> dict[str, Any]:
    with service.store.begin() as conn:
        return dict(
            conn.execute(select(t.audit_log).where(t.audit_log.c.seq == seq)).mappings().one()
        )


def test_verify_passes_on_the_intact_demo_plant(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    records = audit_count(service)
    assert records > 10  # the demo plant was brought to its state through real actions
    code, out, err = verify(plant, tmp_path)
    assert (code, out, err) == (0, f"ok: {records} records\n", "")


def test_verify_passes_after_real_work_with_offline_station_times(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    floor = ServiceFloor(service)
    # Stations in three zones, recorded offline and delivered later: times keep their instant.
    zones = [timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30)), UTC]
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1")).traveler
    for n, zone in enumerate(zones):
        at = datetime(2026, 3, 1, 8, n, 0, 250_000, tzinfo=zone)
        trav = floor.do(
            floor.record(
                "ana",
                trav,
                "10.1",
                "Bracket forging lot",
                "LOT-A100",
                station_time=at,
                offline=True,
            )
        ).traveler
    latest = step_of(trav, "10.1").items[0].latest
    assert latest is not None and latest.offline
    assert latest.station_time == datetime(2026, 3, 1, 8, 2, 0, 250_000, tzinfo=UTC)
    floor.do(
        PauseStep(actor_id=floor.ids["ana"], traveler="TRV-1001", step_id=step_of(trav, "10.1").id)
    )
    floor.do(
        StartStep(actor_id=floor.ids["ana"], traveler="TRV-1001", step_id=step_of(trav, "10.1").id)
    )

    with service.store.begin() as conn:
        verdict = audit.verify(conn)
        times = (
            conn.execute(
                select(t.audit_log.c.station_time).where(t.audit_log.c.station_time.is_not(None))
            )
            .scalars()
            .all()
        )
    assert verdict.ok, verdict
    assert datetime(2026, 3, 1, 13, 0, 0, 250_000, tzinfo=UTC) in times  # 08:00-05:00
    assert datetime(2026, 3, 1, 2, 31, 0, 250_000, tzinfo=UTC) in times  # 08:01+05:30
    code, out, _ = verify(plant, tmp_path)
    assert (code, out) == (0, f"ok: {audit_count(service)} records\n")


def test_an_edited_record_is_named(plant: Plant, service: ExecutionService, tmp_path: Path) -> None:
    seq = audit_count(service) // 2
    with service.store.begin() as conn:
        conn.execute(
            update(t.audit_log).where(t.audit_log.c.seq == seq).values(new='{"value":"12.700"}')
        )
    code, out, err = verify(plant, tmp_path)
    assert code != 0
    assert out == f"broken at record {seq}: its content was changed after it was written\n"
    assert "Traceback" not in err


def test_an_edited_last_record_is_named(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    seq = audit_count(service)
    with service.store.begin() as conn:
        conn.execute(
            update(t.audit_log).where(t.audit_log.c.seq == seq).values(actor="Someone Else")
        )
    code, out, _ = verify(plant, tmp_path)
    assert code != 0
    assert out.startswith(f"broken at record {seq}:")


def test_a_deleted_record_is_named(plant: Plant, service: ExecutionService, tmp_path: Path) -> None:
    seq = audit_count(service) // 2
    with service.store.begin() as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == seq))
    code, out, _ = verify(plant, tmp_path)
    assert code != 0
    assert out == f"broken at record {seq}: record {seq} is missing or out of order\n"


def test_a_deleted_last_record_is_named(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    seq = audit_count(service)
    with service.store.begin() as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == seq))
    code, out, _ = verify(plant, tmp_path)
    assert code != 0
    assert out.startswith(f"broken at record {seq}:")


@pytest.mark.parametrize("what", ["whole rows", "content only"])
def test_two_swapped_records_are_named(
    plant: Plant, service: ExecutionService, tmp_path: Path, what: str
) -> None:
    first = audit_count(service) // 3
    second = first + 5
    a, b = audit_row(service, first), audit_row(service, second)
    keep = {"seq"} if what == "whole rows" else {"seq", "prev_hash", "hash"}

    def moved(row: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (bytes(v) if isinstance(v, memoryview) else v)
            for k, v in row.items()
            if k not in keep
        }

    with service.store.begin() as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == first).values(**moved(b)))
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == second).values(**moved(a)))
    assert audit_row(service, first)["action"] == b["action"]
    code, out, _ = verify(plant, tmp_path)
    assert code != 0
    assert out.startswith(f"broken at record {first}:"), out


# --- schema version -----------------------------------------------------------------------------------


def test_a_database_from_a_newer_release_is_refused(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    with service.store.begin() as conn:
        conn.execute(update(t.meta).where(t.meta.c.key == "schema_version").values(value="99"))
    service.store.dispose()

    with pytest.raises(SchemaTooNew) as refused:
        Store.open(plant.database_url)
    message = str(refused.value)
    assert "version 99" in message and f"up to version {t.SCHEMA_VERSION}" in message
    assert "Upgrade the kiosk package" in message

    url = plant.database_url
    secret = str(plant.secret_file)
    for args in (
        ["audit", "verify", "--database-url", url],
        ["export", "as-built", "TRV-1001", "--database-url", url, "--secret-file", secret],
        ["serve", "--port", str(free_port()), "--database-url", url, "--secret-file", secret],
    ):
        done = kiosk(*args, data_dir=tmp_path, timeout=30)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: The database schema is version 99"), lines[0]
        assert done.stdout == ""

    # Nothing was changed by the refused commands.
    with Store(service.store.engine).begin() as conn:
        assert (
            conn.execute(
                select(t.meta.c.value).where(t.meta.c.key == "schema_version")
            ).scalar_one()
            == "99"
        )


def test_verify_on_a_database_without_a_plant_says_so(tmp_path: Path) -> None:
    done = kiosk(
        "audit", "verify", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path
    )
    assert done.returncode != 0
    assert done.stderr.strip() == "error: The database has no kiosk schema; run `kiosk serve` once."


def rewrite_chain_from(service: ExecutionService, seq: int, new_value: str) -> None:
    """What someone with write access to the database could do: change a record, then recompute
    every hash after it and the head, so the chain alone looks intact again."""
    with service.store.begin() as conn:
        conn.execute(t.audit_log.update().where(t.audit_log.c.seq == seq).values(new=new_value))
        rows = conn.execute(select(t.audit_log).order_by(t.audit_log.c.seq)).mappings().all()
        prev = audit.GENESIS
        for row in rows:
            digest = audit.record_hash(prev, dict(row))
            conn.execute(
                t.audit_log.update()
                .where(t.audit_log.c.seq == row["seq"])
                .values(prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(t.audit_head.update().values(hash=prev))


def test_a_recomputed_chain_is_caught_by_its_signed_checkpoint(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    assert service.seal_audit() is None  # the demo plant was sealed when it was seeded
    rewrite_chain_from(service, 3, '"forged"')
    with service.store.begin() as conn:
        assert audit.verify(conn).ok  # the bare chain cannot tell
    code, out, _err = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith("broken at record ") and "signed checkpoint" in out


def test_a_forged_checkpoint_is_caught(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    with service.store.begin() as conn:
        conn.execute(t.audit_checkpoints.update().values(mac="0" * 64))
    code, out, _err = verify(plant, tmp_path)
    assert code == 1 and "signed checkpoint is not genuine" in out


def test_seal_signs_the_current_head(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    ServiceFloor(service).work("ana", "TRV-1001", "10.1")  # the chain grows past its last seal
    done = kiosk("audit", "seal", "--database-url", plant.database_url,
                 "--secret-file", str(plant.secret_file), data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0 and done.stdout == f"sealed at record {audit_count(service)}\n"
    assert verify(plant, tmp_path) == (0, f"ok: {audit_count(service)} records\n", "")


def test_the_server_seals_the_chain_while_it_runs(service: ExecutionService) -> None:
    import threading
    import time

    import uvicorn

    from kiosk.server.app import create_app
    from tests.conftest import free_port

    ServiceFloor(service).work("ana", "TRV-1001", "10.1")  # the head is past the last seal
    head = audit_count(service)
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), port=free_port(), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        sealed: list[int] = []
        while time.monotonic() < deadline and head not in sealed:
            with service.store.begin() as conn:
                sealed = list(conn.execute(select(t.audit_checkpoints.c.seq)).scalars())
            time.sleep(0.05)
        assert head in sealed
    finally:
        server.should_exit = True
        thread.join(10)
