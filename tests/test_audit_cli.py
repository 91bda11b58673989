"""The audit chain through the real `kiosk audit verify` command, and the schema-version guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete, func, select, update

from kiosk.server import audit, records
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.server.store import SchemaTooNew, Store
from kiosk.wire import PauseStep, StartStep
from tests.helpers import ServiceFloor, audit_count, free_port, kiosk, step_of

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow  # every test here runs the real command as a child process


def verify(plant: Plant, tmp_path: Path, *witnesses: Path) -> tuple[int, str, str]:
    """`kiosk audit verify` as on the server host: with the plant secret, so record seals and
    checkpoints count, and with the witness file beside it. Answers the verdict's line only."""
    extra = [arg for w in witnesses for arg in ("--witness", str(w))]
    done = kiosk(
        "audit", "verify", "--database-url", plant.database_url,
        "--secret-file", str(plant.secret_file), *extra, data_dir=tmp_path,
    )  # fmt: skip
    return done.returncode, done.stdout.splitlines()[0] + "\n", done.stderr


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
    # An empty file: a missing one is refused too, and never created (tests/test_migrations.py).
    (tmp_path / "empty.db").touch()
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
    with service.store.begin() as conn:  # a record no row is re-derived from: a station added
        seq = conn.execute(
            select(func.min(t.audit_log.c.seq)).where(t.audit_log.c.action == "add_station")
        ).scalar_one()
    rewrite_chain_from(service, seq, '"forged"')
    with service.store.begin() as conn:
        assert audit.verify(conn).ok  # the bare chain cannot tell
    code, out, _err = verify(plant, tmp_path)
    assert code == 1
    # Named at the first rewritten record: its seal (a MAC the rewriter cannot make) is wrong.
    assert out == f"broken at record {seq}: its seal does not match: the chain was rewritten from this record on\n"


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


# --- the records, re-derived from the chain --------------------------------------------------------


def worked(service: ExecutionService) -> ServiceFloor:
    """TRV-1001 10.1 (a lot consumed, signed) and 10.2 (a tool, a bore measured, signed)."""
    floor = ServiceFloor(service)
    floor.work("ana", "TRV-1001", "10.1")
    floor.work("ana", "TRV-1001", "10.2")
    service.seal_audit()
    return floor


def one(service: ExecutionService, query: Any) -> Any:
    with service.store.begin() as conn:
        return conn.execute(query).one()


def bore_value(service: ExecutionService) -> Any:
    return one(
        service,
        select(t.recorded_values)
        .join(t.data_items, t.data_items.c.id == t.recorded_values.c.item_id)
        .join(t.steps, t.steps.c.id == t.data_items.c.step_id)
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .where(t.data_items.c.label == "Bushing bore diameter", t.travelers.c.number == "TRV-1001"),
    )


def audit_seq_of(service: ExecutionService, entity: str) -> int:
    return int(
        one(service, select(func.min(t.audit_log.c.seq)).where(t.audit_log.c.entity == entity))[0]
    )


def test_an_edited_value_is_named_with_the_record_it_disagrees_with(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    worked(service)
    value = bore_value(service)
    with service.store.begin() as conn:
        conn.execute(
            update(t.recorded_values)
            .where(t.recorded_values.c.id == value.id)
            .values(value="12.705")
        )
    seq = audit_seq_of(service, f"value:{value.id}")
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(
        f"broken: recorded value {value.id}: value is '12.705' in the database but '12.700' in "
        f"audit record {seq}"
    ), out
    # The as-built shows the edited value, and verify is what tells the auditor it was edited.
    assert "(and 1 more)" in out  # the signature over 10.2 no longer matches either


def test_an_edited_signature_meaning_and_consumed_lot_are_named(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    worked(service)
    with service.store.begin() as conn:
        sig_id = conn.execute(select(func.min(t.signatures.c.id))).scalar_one()
        conn.execute(
            update(t.signatures).where(t.signatures.c.id == sig_id).values(meaning="verified")
        )
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(
        f"broken: signature {sig_id}: meaning is 'verified' in the database but 'performed'"
    ), out

    with service.store.begin() as conn:
        conn.execute(
            update(t.signatures).where(t.signatures.c.id == sig_id).values(meaning="performed")
        )
        other = conn.execute(
            select(t.material_lots.c.id).where(t.material_lots.c.code == "LOT-A101")
        ).scalar_one()
        use = conn.execute(select(t.consumption)).first()
        assert use is not None
        conn.execute(update(t.consumption).where(t.consumption.c.id == use.id).values(lot_id=other))
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(f"broken: material consumption {use.id}: lot_id is {other} in the database")


def test_a_deleted_value_and_an_inserted_signature_are_named(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    floor = worked(service)
    value = bore_value(service)
    seq = audit_seq_of(service, f"value:{value.id}")
    with service.store.begin() as conn:
        conn.execute(delete(t.recorded_values).where(t.recorded_values.c.id == value.id))
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(
        f"broken: recorded value {value.id}, written by audit record {seq}, is missing from the "
        "database: it was deleted"
    ), out

    with service.store.begin() as conn:
        conn.execute(t.recorded_values.insert().values(**value._asdict()))  # put it back
        step = conn.execute(select(t.steps).where(t.steps.c.number == "20.1")).first()
        assert step is not None
        forged = conn.execute(
            t.signatures.insert()
            .values(
                subject="step", subject_id=step.id, user_id=floor.ids["ivy"],
                printed_name="Ivy Chen", meaning="verified", station_id=1,
                server_time=datetime.now(UTC), offline=False, content_hash="0" * 64,
            )  # fmt: skip
            .returning(t.signatures.c.id)
        ).scalar_one()
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(
        f"broken: signature {forged} is in the database but not in the audit trail"
    ), out


def rewrite_record(service: ExecutionService, seq: int, new: str) -> None:
    """Change one audit record, recompute every hash after it and the head, and delete the
    signed checkpoints from there on: all that database write access allows."""
    rewrite_chain_from(service, seq, new)
    with service.store.begin() as conn:
        conn.execute(delete(t.audit_checkpoints).where(t.audit_checkpoints.c.seq >= seq))


def test_a_value_edited_with_its_record_and_rehashed_chain_is_still_caught(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    worked(service)
    value = bore_value(service)
    seq = audit_seq_of(service, f"value:{value.id}")
    with service.store.begin() as conn:
        conn.execute(
            update(t.recorded_values)
            .where(t.recorded_values.c.id == value.id)
            .values(value="12.705")
        )
        new = conn.execute(select(t.audit_log.c.new).where(t.audit_log.c.seq == seq)).scalar_one()
    rewrite_record(service, seq, new.replace('"12.700"', '"12.705"'))

    # With the plant secret: the first rewritten record's seal no longer matches.
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out == f"broken at record {seq}: its seal does not match: the chain was rewritten from this record on\n"

    # Without it, the chain looks whole and every row matches it; the signature over the value
    # does not: its content hash is recomputed from the data as it now stands.
    done = kiosk("audit", "verify", "--database-url", plant.database_url,
                 "--secret-file", str(tmp_path / "no-secret"), data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "no longer matches TRV-1001 step 10.2" in done.stdout, done.stdout


def test_a_chain_cut_back_is_caught_by_the_witnesses(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    """Everything after a point deleted, rows, records, checkpoints and head alike: the chain is
    consistent again, and only a checkpoint kept outside the database can tell."""
    sealed = service.seal_audit()
    assert sealed is None  # the demo plant was sealed when it was seeded
    cut = audit_count(service)
    worked(service)
    station_witness = tmp_path / "station-7.jsonl"
    with service.store.begin() as conn:
        latest = audit.latest_checkpoint(conn)
        assert latest is not None and latest.seq > cut
    station_witness.write_text(latest.model_dump_json() + "\n")
    with service.store.begin() as conn:
        later = conn.execute(select(t.audit_log.c.entity).where(t.audit_log.c.seq > cut))
        made: dict[str, list[int]] = {}
        for (entity,) in later:
            kind, _, ident = entity.partition(":")
            made.setdefault(kind, []).append(int(ident))
        for kind in ("tool_use", "consumption", "signature", "value", "labour"):
            table = records.TRACKED[kind]
            conn.execute(delete(table).where(table.c.id.in_(made.get(kind, []))))
        conn.execute(
            update(t.steps).where(t.steps.c.id.in_(made["step"])).values(status="not_started")
        )
        conn.execute(delete(t.audit_checkpoints).where(t.audit_checkpoints.c.seq > cut))
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq > cut))
        head = conn.execute(select(t.audit_log.c.hash).where(t.audit_log.c.seq == cut)).scalar_one()
        conn.execute(t.audit_head.update().values(seq=cut, hash=head))
    server_witness = audit.witness_path(plant.secret_file)

    # The server's own witness, beside the plant secret, is read by default.
    code, out, _ = verify(plant, tmp_path)
    assert code == 1
    assert out.startswith(f"broken at record {cut + 1}: the chain ends at {cut}, but "), out
    assert "records were cut off the end" in out

    # Its witness file gone too, the station's copy of the latest checkpoint still tells.
    server_witness.unlink()
    assert verify(plant, tmp_path)[0] == 0  # what a chain cut back looks like with no witness
    code, out, _ = verify(plant, tmp_path, station_witness)
    assert code == 1
    assert f"but station-7.jsonl line 1 witnessed record {latest.seq}" in out


def test_a_witness_that_is_not_a_checkpoint_is_refused_with_one_line(
    plant: Plant, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    done = kiosk("audit", "verify", "--database-url", plant.database_url, "--secret-file",
                 str(plant.secret_file), "--witness", str(bad), data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {bad} line 1 is not a checkpoint"


def test_a_station_keeps_the_latest_checkpoint_as_its_witness(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    from kiosk.client.api import ExecutionClient
    from kiosk.client.link import StationLink
    from kiosk.wire import Heartbeat

    station = service.authenticate(service.local_station_token("LINE-30", "ASSEMBLY"))
    beat = Heartbeat(app_version="0.1.0", config_version=1, theme="kiosk-dark", terminal="80x24",
                     color_system="standard", outbox_waiting=0, outbox_refused=0,
                     uptime_seconds=1.0)  # fmt: skip
    first = service.heartbeat(station, beat).checkpoint
    worked(service)
    latest = service.heartbeat(station, beat).checkpoint
    assert first is not None and latest is not None and latest.seq > first.seq

    link = StationLink(ExecutionClient("http://127.0.0.1:9", None), tmp_path / "station")
    link.keep_checkpoint(latest)
    link.keep_checkpoint(first)  # a head that went back is not taken: the kept one is evidence
    link.db.close()
    done = kiosk("audit", "witness", data_dir=tmp_path / "station")
    assert done.returncode == 0, done.stderr
    assert done.stdout == latest.model_dump_json() + "\n"
    (tmp_path / "witness.jsonl").write_text(done.stdout)
    code, out, _ = verify(plant, tmp_path, tmp_path / "witness.jsonl")
    assert (code, out) == (0, f"ok: {audit_count(service)} records\n")
