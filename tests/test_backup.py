"""`kiosk backup` and `kiosk restore` as an admin runs them, on SQLite and PostgreSQL.

A backup taken while a real `kiosk serve` process keeps writing restores into a fresh target and
verifies, holding exactly the chain up to the moment it was taken; a quiet backup restores to a
database equal to its source, table by table. A damaged or incomplete backup is refused before
anything is touched, and so is a restore over an existing plant or another plant's secret,
unless forced; forced, nothing that is evidence is thrown away.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from kiosk.client import ExecutionClient
from kiosk.server import audit
from kiosk.server import schema as t
from kiosk.server.backup import sha256
from kiosk.server.security import PlantSecret
from kiosk.server.store import normalize_url
from tests.fixtures.databases import empty_database
from tests.helpers import (
    Floor,
    ServiceFloor,
    free_port,
    kiosk,
    person_ids,
    server_process,
    wait_until_answers,
)

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow  # the real commands and server, as child processes

HOLE = "Hole diameter 1-1"  # TRV-2000 step 10.1: a measurement, no tool or calibration date


def run(*args: str, data_dir: Path) -> tuple[int, str, str]:
    done = kiosk(*args, data_dir=data_dir, timeout=120)
    return done.returncode, done.stdout, done.stderr


def plant_args(url: str, secret: Path) -> list[str]:
    return ["--database-url", url, "--secret-file", str(secret)]


def backend_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def tables(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, in primary-key order."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    dict(row)
                    for row in conn.execute(select(table).order_by(*table.primary_key)).mappings()
                ]
                for table in t.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def table_count(url: str) -> int:
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return len(engine.dialect.get_table_names(conn))
    finally:
        engine.dispose()


def backup(plant: Plant, dest: Path, data_dir: Path) -> dict[str, Any]:
    code, out, err = run("backup", str(dest), *plant_args(plant.database_url, plant.secret_file),
                         data_dir=data_dir)  # fmt: skip
    assert (code, err) == (0, ""), out + err
    manifest: dict[str, Any] = json.loads((dest / "manifest.json").read_text())
    assert out == (
        f"backed up {manifest['database']['source']} (schema version 2, audit record "
        f"{manifest['audit_head']['seq']}) into {dest}: {len(manifest['files'])} files, "
        f"{sum(f['bytes'] for f in manifest['files'])} bytes\n"
    )
    return manifest


def restore(src: Path, url: str, secret: Path, data_dir: Path, *extra: str) -> tuple[int, str, str]:
    return run("restore", str(src), *plant_args(url, secret), *extra, data_dir=data_dir)


# --- while a server writes ----------------------------------------------------------------------------


async def _write_until(url: str, token: str, ids: dict[str, int], stop: asyncio.Event) -> int:
    """Record hole diameters one after another, as a station would, until told to stop."""
    done = 0
    async with ExecutionClient(url, token) as client:
        floor = Floor(client, ids)
        await floor.start_step("ben", "TRV-2000", "10.1")
        while not stop.is_set() and done < 2000:
            await floor.record_value("ben", "TRV-2000", "10.1", HOLE, f"4.8{done % 60:02d}")
            done += 1
    return done


async def _backup_meanwhile(
    plant: Plant, dest: Path, data_dir: Path, writing: asyncio.Task[int], before: int
) -> dict[str, Any]:
    """Wait for writes to flow, back up, and let some more land after the backup."""
    start = _audit_count(plant.database_url)
    while _audit_count(plant.database_url) < start + 10:
        assert not writing.done(), "the writer stopped"
        await asyncio.sleep(0.05)
    manifest = await asyncio.to_thread(backup, plant, dest, data_dir)
    after = _audit_count(plant.database_url)
    while _audit_count(plant.database_url) < after + 10:
        assert not writing.done(), "the writer stopped"
        await asyncio.sleep(0.05)
    assert before < manifest["audit_head"]["seq"] < _audit_count(plant.database_url)
    return manifest


def _audit_count(url: str) -> int:
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one())
    finally:
        engine.dispose()


async def test_a_backup_taken_while_a_server_writes_restores_and_verifies(
    plant: Plant, tmp_path: Path
) -> None:
    svc = plant.service()
    token, ids = svc.local_station_token("ASSY-BACKUP", "ASSEMBLY"), person_ids(svc)
    svc.store.dispose()
    before = _audit_count(plant.database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), *plant_args(plant.database_url, plant.secret_file)]
    with server_process(*args, data_dir=tmp_path, log=tmp_path / "serve.log") as proc:
        wait_until_answers(f"{url}/health", proc)
        stop = asyncio.Event()
        writing = asyncio.create_task(_write_until(url, token, ids, stop))
        try:
            manifest = await asyncio.wait_for(
                _backup_meanwhile(plant, tmp_path / "during", tmp_path, writing, before), 120
            )
        finally:
            stop.set()
            written = await writing
    assert written >= 20
    head = manifest["audit_head"]["seq"]
    with empty_database(backend_of(plant.database_url), tmp_path, "restored") as target:
        secret = tmp_path / "restored" / "plant-secret"
        code, out, err = restore(tmp_path / "during", target, secret, tmp_path)
        assert (code, err) == (0, ""), out + err
        assert out.splitlines()[-1] == f"ok: {head} records"
        # The chain as it was at that moment: every record up to the backup's head, and no other.
        source = tables(plant.database_url)["audit_log"]
        assert tables(target)["audit_log"] == source[:head]
        assert len(source) > head
        assert secret.read_bytes() == plant.secret_file.read_bytes()
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_quiet_backup_restores_to_an_equal_database(plant: Plant, tmp_path: Path) -> None:
    manifest = backup(plant, tmp_path / "backup", tmp_path)
    folder = tmp_path / "backup"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = {f["name"] for f in manifest["files"]}
    database = (
        "database.sqlite" if backend_of(plant.database_url) == "sqlite" else "database.pgdump"
    )
    drawings = kept_files(plant)
    assert len(drawings) == 3  # the demo's drawings and specification, kept beside the secret
    assert names == {database, "plant-secret", "plant-secret.witness.jsonl", *drawings}
    for entry in manifest["files"]:
        assert stat.S_IMODE((folder / entry["name"]).stat().st_mode) == 0o600, entry["name"]
    assert manifest["schema_version"] == t.SCHEMA_VERSION
    with empty_database(backend_of(plant.database_url), tmp_path, "restored") as target:
        secret = tmp_path / "restored" / "plant-secret"
        code, out, err = restore(folder, target, secret, tmp_path)
        assert (code, err) == (0, ""), out + err
        assert out.splitlines()[-1] == f"ok: {manifest['audit_head']['seq']} records"
        assert tables(target) == tables(plant.database_url)
        witness = audit.witness_path(secret)
        assert witness.read_bytes() == audit.witness_path(plant.secret_file).read_bytes()
        code, out, _ = run("audit", "verify", *plant_args(target, secret), data_dir=tmp_path)
        assert code == 0 and out.startswith("ok: "), out


def test_a_sqlite_backup_is_one_self_contained_file(plant: Plant, tmp_path: Path) -> None:
    if backend_of(plant.database_url) != "sqlite":
        pytest.skip("a PostgreSQL backup is a pg_dump archive")
    backup(plant, tmp_path / "backup", tmp_path)
    copy = tmp_path / "backup" / "database.sqlite"
    with sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sorted(p.name for p in copy.parent.iterdir()) == sorted([
        "database.sqlite",
        "manifest.json",
        "plant-secret",
        "plant-secret.witness.jsonl",
        *kept_files(plant),
    ])  # fmt: skip


def kept_files(plant: Plant) -> set[str]:
    """The backup's names for the plant's kept files (drawings, photos): file-<sha256>."""
    root = plant.secret_file.with_name("files")
    return {f"file-{p.name}" for p in root.rglob("*") if p.is_file()}


# --- what a restore refuses ---------------------------------------------------------------------------


def _one_error(code: int, out: str, err: str) -> str:
    assert code == 3 and out == "" and "Traceback" not in err, out + err
    (line,) = err.strip().splitlines()
    return line


def test_a_damaged_or_incomplete_backup_is_refused_and_nothing_restored(
    plant: Plant, tmp_path: Path
) -> None:
    manifest = backup(plant, tmp_path / "backup", tmp_path)
    folder = tmp_path / "backup"
    database = folder / manifest["files"][0]["name"]
    witness = folder / "plant-secret.witness.jsonl"
    with empty_database(backend_of(plant.database_url), tmp_path, "restored") as target:
        secret = tmp_path / "restored" / "plant-secret"

        def refused(expected: str) -> None:
            line = _one_error(*restore(folder, target, secret, tmp_path))
            assert line.startswith(f"error: {expected}"), line
            assert not secret.exists()
            if backend_of(target) == "sqlite":
                assert not Path(target.removeprefix("sqlite:///")).exists()
            else:
                assert table_count(target) == 0

        good = database.read_bytes()
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x01  # one bit
        database.write_bytes(bytes(flipped))
        refused(f"refused: {database.name} does not match its SHA-256 in the manifest")
        database.write_bytes(good[:-1])
        refused(f"refused: {database.name} has {len(good) - 1} bytes, the manifest says")
        database.write_bytes(good)
        witness.unlink()
        refused("refused: plant-secret.witness.jsonl is missing")
        (folder / "manifest.json").unlink()
        refused(f"{folder} is not a kiosk backup: it has no manifest.json")


def test_a_restore_over_an_existing_plant_needs_force_and_keeps_the_evidence(
    plant: Plant, tmp_path: Path
) -> None:
    manifest = backup(plant, tmp_path / "backup", tmp_path)
    head = manifest["audit_head"]["seq"]
    # The plant goes on after the backup, and its head is witnessed beside the secret.
    svc = plant.service()
    ServiceFloor(svc).work("ben", "TRV-2000", "10.1", {HOLE: "4.83"})
    svc.seal_audit()
    svc.store.dispose()
    later = tables(plant.database_url)

    line = _one_error(
        *restore(tmp_path / "backup", plant.database_url, plant.secret_file, tmp_path)
    )
    assert line.startswith("error: refused: ") and "only with --force" in line, line
    assert tables(plant.database_url) == later

    code, out, err = restore(
        tmp_path / "backup", plant.database_url, plant.secret_file, tmp_path, "--force"
    )
    assert code == 0 and out.splitlines()[-1] == f"ok: {head} records", out + err
    assert len(tables(plant.database_url)["audit_log"]) == head
    # The witness that saw the records after the backup is kept aside and named, not deleted.
    (note,) = err.strip().splitlines()
    assert note.startswith("note: plant-secret.witness.jsonl held 1 checkpoint(s) the backup")
    (aside,) = plant.secret_file.parent.glob("plant-secret.witness.jsonl.before-restore-*")
    code, out, _ = run(
        "audit", "verify", *plant_args(plant.database_url, plant.secret_file),
        "--witness", str(aside), data_dir=tmp_path,
    )  # fmt: skip
    assert code == 1 and "records were cut off the end" in out, out


def test_another_plants_secret_is_never_overwritten(plant: Plant, tmp_path: Path) -> None:
    backup(plant, tmp_path / "backup", tmp_path)
    other = tmp_path / "other" / "plant-secret"
    PlantSecret.load_or_create(other)
    theirs = other.read_bytes()
    with empty_database(backend_of(plant.database_url), tmp_path, "restored") as target:
        line = _one_error(*restore(tmp_path / "backup", target, other, tmp_path))
        assert line.startswith(f"error: refused: {other} holds a different plant secret"), line
        assert other.read_bytes() == theirs

        code, out, err = restore(tmp_path / "backup", target, other, tmp_path, "--force")
        assert code == 0 and out.splitlines()[-1].startswith("ok: "), out + err
        assert other.read_bytes() == plant.secret_file.read_bytes()
        (aside,) = other.parent.glob("plant-secret.replaced-*")
        assert aside.read_bytes() == theirs
        assert f"note: the plant secret that was there is now {aside}" in err


def test_backup_refuses_a_used_folder_and_a_missing_secret(plant: Plant, tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    line = _one_error(*run("backup", str(used), *plant_args(plant.database_url, plant.secret_file),
                           data_dir=tmp_path))  # fmt: skip
    assert line == f"error: {used} already exists and is not an empty folder: give a new one"
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]

    missing = tmp_path / "nowhere" / "plant-secret"
    dest = tmp_path / "backup"
    line = _one_error(*run("backup", str(dest), *plant_args(plant.database_url, missing),
                           data_dir=tmp_path))  # fmt: skip
    assert line.startswith(f"error: there is no plant secret at {missing}"), line
    assert not dest.exists() and not missing.exists()


def test_a_backup_rewritten_with_a_matching_manifest_fails_its_verify(
    plant: Plant, tmp_path: Path
) -> None:
    """The manifest catches damage; someone who also rewrites it is caught by the audit trail."""
    if backend_of(plant.database_url) != "sqlite":
        pytest.skip("edits the SQLite copy in place")
    folder = tmp_path / "backup"
    backup(plant, folder, tmp_path)
    copy = folder / "database.sqlite"
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE recorded_values SET value = '12.690' WHERE value = '12.702'")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][0].update(bytes=copy.stat().st_size, sha256=sha256(copy))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    code, out, _ = restore(folder, target, tmp_path / "restored-secret", tmp_path)
    assert code == 1
    assert out.splitlines()[-1].startswith("broken: recorded value "), out
    assert "is '12.690' in the database but '12.702' in audit record" in out
