"""Upgrading a real release-1 plant with the real `kiosk db upgrade`, on SQLite and PostgreSQL.

The release-1 plant is tests/fixtures/v1-plant.db, written by release 1's own code (see
tests/fixtures/make_v1_plant.py); on PostgreSQL it is built at test time from release 1's DDL and
that file's rows. What a plant notices: the server refuses the old database and says what to run;
the upgrade takes a backup, keeps every record, and `kiosk audit verify` passes on the result (and
still catches a row edited afterwards); work goes on; a new database and an upgraded one have the
same schema; a broken chain or a failing upgrade changes nothing; read commands never create a
database or a plant secret.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.pool import NullPool

from kiosk.server import audit, migrations, records
from kiosk.server import schema as t
from kiosk.server.app import ServerConfig, open_service
from kiosk.server.security import PlantSecret
from kiosk.server.store import SchemaTooOld, Store, normalize_url
from kiosk.server.upgrade import script_head
from tests.fixtures import v1_plant, v1_schema
from tests.fixtures.databases import backends, empty_database, pg_database_exists, pg_url
from tests.fixtures.v1_plant import OldPlant, release_1_plant
from tests.helpers import ROOT, ServiceFloor, free_port, kiosk

pytestmark = pytest.mark.slow  # the real command, as a child process

RELEASE_1_RECORDS = 57  # audit records in the fixture
TRACKED_ROWS = 31  # values, consumption, tool uses, NCRs, holds and signatures in it


@pytest.fixture(params=backends())
def old_plant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OldPlant]:
    with release_1_plant(request.param, tmp_path / "plant") as plant:
        yield plant


def run(*args: str, data_dir: Path) -> tuple[int, str, str]:
    done = kiosk(*args, data_dir=data_dir, timeout=120)
    return done.returncode, done.stdout, done.stderr


def db_args(plant: OldPlant) -> list[str]:
    return ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]


def engine_for(url: str) -> Any:
    return create_engine(normalize_url(url), poolclass=NullPool)


def scalar(url: str, sql: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def layout(url: str) -> dict[str, Any]:
    """What a schema is, by reflection: per table its columns (type, null, default), primary key,
    foreign keys, indexes and unique constraints, with their names. Column order is left out:
    PostgreSQL's ADD COLUMN appends, and nothing in the server depends on the order."""
    engine = engine_for(url)
    found: dict[str, Any] = {}
    try:
        insp = inspect(engine)
        for table in sorted(insp.get_table_names()):
            pk = insp.get_pk_constraint(table)
            found[table] = {
                "columns": {
                    c["name"]: (c["type"].compile(engine.dialect), c["nullable"], c.get("default"))
                    for c in insp.get_columns(table)
                },
                "primary key": (pk["name"], pk["constrained_columns"]),
                "foreign keys": sorted(
                    (f["name"] or "", f["constrained_columns"], f["referred_table"])
                    for f in insp.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"] or "", i["column_names"], bool(i["unique"]))
                    for i in insp.get_indexes(table)
                ),
                "unique": sorted(
                    (u["name"] or "", u["column_names"]) for u in insp.get_unique_constraints(table)
                ),
            }
    finally:
        engine.dispose()
    return found


def alembic_differences(url: str) -> list[Any]:
    """Alembic's own comparison of a database with schema.py (what autogenerate would write)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, t.metadata))
    finally:
        engine.dispose()


def upgrade(plant: OldPlant, data_dir: Path, *extra: str) -> tuple[int, str, str]:
    return run("db", "upgrade", *db_args(plant), *extra, data_dir=data_dir)


# --- the fixture is release 1's -----------------------------------------------------------------------


def test_the_release_1_schema_module_is_release_1s_own() -> None:
    shown = subprocess.run(
        ["git", "show", f"{v1_plant.RELEASE_1}:kiosk/server/schema.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"release 1 is not in this clone's history: {shown.stderr.strip()}")
    assert (ROOT / "tests/fixtures/v1_schema.py").read_text() == shown.stdout


def test_the_fixture_is_a_release_1_plant_with_a_shift_of_work() -> None:
    with sqlite3.connect(f"{v1_plant.DATABASE.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [("1",)]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_log)")}
        assert "mac" not in columns
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (RELEASE_1_RECORDS,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "alembic_version" not in tables and "person_sessions" not in tables
        subjects = conn.execute("SELECT subject, count(*) FROM signatures GROUP BY 1").fetchall()
        assert dict(subjects) == {"step": 7, "hold": 1, "ncr": 1}
        assert conn.execute("SELECT count(*) FROM station_verifiers").fetchone() == (4,)


# --- an older schema is refused with what to run -------------------------------------------------------


def test_the_server_and_every_command_refuse_release_1_naming_the_upgrade(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    before = layout(old_plant.database_url)
    for args in (
        ["serve", "--port", str(free_port()), *db_args(old_plant)],
        ["audit", "verify", *db_args(old_plant)],
        ["export", "as-built", "TRV-1002", *db_args(old_plant)],
        ["station", "add", "ASSY-09", "--work-center", "ASSEMBLY", *db_args(old_plant)],
    ):
        code, out, err = run(*args, data_dir=tmp_path)
        assert code != 0, args
        assert out == "" and "Traceback" not in err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: The database schema is version 1"), line
        assert "run `kiosk db upgrade`" in line
    assert layout(old_plant.database_url) == before
    assert scalar(old_plant.database_url, "SELECT value FROM meta") == "1"


# --- the upgrade --------------------------------------------------------------------------------------


def test_upgrade_takes_a_backup_keeps_every_record_and_verify_passes(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "backups"
    code, out, err = upgrade(old_plant, tmp_path, "--backup-dir", str(backup_dir))
    assert (code, err) == (0, ""), out + err
    (folder,) = backup_dir.iterdir()
    total = RELEASE_1_RECORDS + TRACKED_ROWS + 1
    assert out.splitlines() == [
        f"backup of schema version 1: {folder}",
        "upgraded to schema version 2",
        f"ok: {total} records",
    ]
    assert folder.name.startswith("kiosk-backup-") and folder.name.endswith("-schema-1")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["schema_version"], manifest["audit_head"]["seq"]) == (1, RELEASE_1_RECORDS)

    code, out, err = run("audit", "verify", *db_args(old_plant), data_dir=tmp_path)
    assert (code, out.splitlines()[0], err) == (0, f"ok: {total} records", ""), out + err
    # The new head is sealed, and witnessed beside the plant secret.
    witnessed = audit.read_witnesses(audit.witness_path(old_plant.secret_file))
    assert [w.checkpoint.seq for w in witnessed] == [total]


def test_upgrade_keeps_the_data_and_converts_what_must_change(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    before = _release_1_rows()
    assert upgrade(old_plant, tmp_path)[0] == 0
    store = Store.open(old_plant.database_url, create=False)
    try:
        with store.read() as conn:
            _same_rows(conn, before)
            _converted(conn)
            _sealed(conn, PlantSecret.load(old_plant.secret_file).audit_key())
    finally:
        store.dispose()


UNCHANGED = [
    table
    for table in v1_schema.metadata.sorted_tables
    if table.name
    not in {"meta", "audit_head", "audit_log", "audit_checkpoints", "station_verifiers"}
]


RENAMED = {"ticket_sha256": "token_sha256"}  # the one column version 2 renamed


def _release_1_rows() -> dict[str, list[dict[str, Any]]]:
    engine = engine_for(f"sqlite:///{v1_plant.DATABASE}")
    found = {}
    try:
        with engine.connect() as conn:
            for table in [*UNCHANGED, v1_schema.audit_log, v1_schema.audit_checkpoints]:
                rows = conn.execute(select(table).order_by(*table.primary_key)).mappings()
                found[table.name] = [{RENAMED.get(k, k): v for k, v in r.items()} for r in rows]
    finally:
        engine.dispose()
    return found


def _same_rows(conn: Any, before: dict[str, list[dict[str, Any]]]) -> None:
    """Every row release 1 wrote is there, column for column (read with version 2's types), in
    the order of release 1's primary keys."""
    for name, rows in before.items():
        table = t.metadata.tables[name]
        order = [
            table.c[RENAMED.get(c.name, c.name)]
            for c in v1_schema.metadata.tables[name].primary_key
        ]
        now = [dict(r) for r in conn.execute(select(table).order_by(*order)).mappings()]
        kept = [{k: row[k] for k in rows[0]} for row in now[: len(rows)]] if rows else []
        assert kept == rows, name
        grown = {"audit_log": TRACKED_ROWS + 1, "audit_checkpoints": 1}.get(name, 0)
        assert len(now) == len(rows) + grown, name


def _converted(conn: Any) -> None:
    people = conn.execute(select(t.users.c.pin_salt, t.users.c.pin_key_sealed)).all()
    assert len({salt for salt, _ in people}) == len(people) == 6
    assert all(len(salt) == 32 and sealed is None for salt, sealed in people)
    salts = conn.execute(select(t.stations.c.badge_salt)).scalars().all()
    assert len(set(salts)) == len(salts) == 2 and all(len(s) == 32 for s in salts)
    assert conn.execute(select(t.station_verifiers)).all() == []
    issues = conn.execute(select(t.cache_issues.c.window_hours, t.cache_issues.c.members)).all()
    assert issues == [(8.0, "[]")]
    failed = conn.execute(
        select(t.data_items.c.label).where(t.data_items.c.failed.is_(True))
    ).scalars()
    assert list(failed) == ["Fastener torque"]
    bore = conn.execute(
        select(t.recorded_values.c.value)
        .join(t.data_items, t.data_items.c.latest_value_id == t.recorded_values.c.id)
        .join(t.steps, t.steps.c.id == t.data_items.c.step_id)
        .where(t.data_items.c.label == "Bushing bore diameter", t.steps.c.traveler_id == 1)
    ).scalar_one()
    assert bore == "12.702"  # 12.708, then 12,702: the second is the latest
    steps = conn.execute(
        select(t.steps.c.traveler_id, t.steps.c.id, t.steps.c.status).order_by(t.steps.c.seq)
    ).all()
    first_open: dict[int, int | None] = {}
    for traveler, step, status in steps:
        first_open.setdefault(traveler, None)
        if status != "complete" and first_open[traveler] is None:
            first_open[traveler] = step
    noted = dict(conn.execute(select(t.travelers.c.id, t.travelers.c.current_step_id)).all())
    assert noted == first_open and noted[2] is not None  # TRV-1002: operation 20 to do


def _sealed(conn: Any, key: bytes) -> None:
    chain = conn.execute(select(t.audit_log).order_by(t.audit_log.c.seq)).mappings().all()
    assert all(bytes(r["mac"]) == audit.record_mac(key, bytes(r["hash"])) for r in chain)
    added = chain[RELEASE_1_RECORDS:]
    assert [r["action"] for r in added] == ["migrate_row"] * TRACKED_ROWS + ["upgrade_schema"]
    entities = {r["entity"] for r in added[:-1]}
    for kind, table in records.TRACKED.items():
        ids = conn.execute(select(table.c.id)).scalars()
        assert {f"{kind}:{i}" for i in ids} <= entities, kind
    mark = json.loads(added[-1]["new"])
    assert mark == {"schema_version": 2, "records_sealed": 57, "rows_entered": TRACKED_ROWS}


def test_after_the_upgrade_work_goes_on_and_a_changed_row_is_still_caught(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    assert upgrade(old_plant, tmp_path)[0] == 0
    svc = open_service(ServerConfig(old_plant.database_url, old_plant.secret_file))
    try:
        floor = ServiceFloor(svc)
        done = floor.work("ben", "TRV-2000", "10.1", {"Hole diameter 1-1": "4.83"})
        assert done.traveler.steps[0].status.value == "complete"
        with svc.store.read() as conn:
            sealed = dict(conn.execute(select(t.users.c.name, t.users.c.pin_key_sealed)).all())
        # Ben's badge + PIN were checked: the key his offline signatures need is made now.
        assert sealed["Ben Okafor"] is not None and sealed["Ana Ortiz"] is None
    finally:
        svc.store.dispose()
    code, out, _ = run("audit", "verify", *db_args(old_plant), data_dir=tmp_path)
    assert code == 0 and out.startswith("ok: "), out

    # A value release 1 recorded, edited behind the server's back, is named.
    store = Store.open(old_plant.database_url, create=False)
    with store.begin() as conn:
        conn.execute(
            t.recorded_values.update().where(t.recorded_values.c.id == 1).values(value="X")
        )
    store.dispose()
    code, out, _ = run("audit", "verify", *db_args(old_plant), data_dir=tmp_path)
    assert code == 1
    assert out.startswith("broken: recorded value 1: value is 'X' in the database but "), out


def test_a_new_database_and_an_upgraded_one_have_the_same_schema(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    backend = make_backend(old_plant.database_url)
    assert upgrade(old_plant, tmp_path)[0] == 0
    with empty_database(backend, tmp_path, "fresh") as fresh:
        Store.open(fresh).dispose()
        assert layout(fresh) == layout(old_plant.database_url)
        for url in (fresh, old_plant.database_url):
            assert alembic_differences(url) == []
            assert scalar(url, "SELECT version_num FROM alembic_version") == migrations.HEAD
    assert script_head() == migrations.HEAD == migrations.REVISIONS[t.SCHEMA_VERSION]


def make_backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def test_an_upgrade_of_a_current_database_has_nothing_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    secret = tmp_path / "plant-secret"
    open_service(ServerConfig(url, secret)).store.dispose()
    code, out, err = run(
        "db", "upgrade", "--database-url", url, "--secret-file", str(secret), data_dir=tmp_path
    )
    assert (code, out, err) == (0, "already at schema version 2: nothing to do\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plant-secret", "plant.db"]


# --- what the upgrade refuses -------------------------------------------------------------------------


def test_a_release_1_chain_that_was_rewritten_is_not_sealed(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    engine = engine_for(old_plant.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET new = '\"paused\"' WHERE seq = 10"))
    engine.dispose()
    code, out, err = upgrade(old_plant, tmp_path, "--backup-dir", str(tmp_path / "backups"))
    assert (code, out) == (1, "")
    (line,) = err.strip().splitlines()
    assert line.startswith(
        "error: Not upgraded: the audit chain is broken (record 10 was changed after it was "
        "written)"
    ), line
    assert not (tmp_path / "backups").exists()  # refused before anything was written
    assert scalar(old_plant.database_url, "SELECT value FROM meta") == "1"


def test_an_upgrade_without_the_plant_secret_is_refused(
    old_plant: OldPlant, tmp_path: Path
) -> None:
    missing = tmp_path / "elsewhere" / "plant-secret"
    code, out, err = run(
        "db", "upgrade", "--database-url", old_plant.database_url, "--secret-file", str(missing),
        data_dir=tmp_path,
    )  # fmt: skip
    assert (code, out) == (3, "")
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: There is no plant secret at {missing}"), line
    assert not missing.exists() and not missing.parent.exists()


def test_an_upgrade_that_fails_half_way_changes_nothing(tmp_path: Path) -> None:
    """SQLite: the migration rebuilds tables with foreign keys off, then checks them all; a row
    release 1 let through refers to nobody, so the whole upgrade rolls back."""
    with release_1_plant("sqlite", tmp_path / "plant") as plant:
        path = Path(plant.database_url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO recorded_values (item_id, value, user_id, station_id, server_time, "
                "offline) VALUES (1, 'x', 999, 1, '2026-11-20 08:00:00.000000', 0)"
            )
        before = layout(plant.database_url)
        code, out, err = upgrade(plant, tmp_path, "--backup-dir", str(tmp_path / "backups"))
        assert (code, out) == (1, "")
        (line,) = err.strip().splitlines()
        assert "recorded_values row" in line and "nothing was changed" in line, line
        assert layout(plant.database_url) == before
        assert scalar(plant.database_url, "SELECT value FROM meta") == "1"
        with pytest.raises(SchemaTooOld):
            Store.open(plant.database_url, create=False)


# --- read commands create nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", backends())
def test_read_commands_on_a_missing_database_create_nothing(backend: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # where a plant secret would be made
    secret = tmp_path / "plant-secret"  # backup and upgrade need one to get as far as the database
    PlantSecret.load_or_create(secret)
    if backend == "sqlite":
        path = tmp_path / "typo" / "plnat.db"
        url, said = (
            f"sqlite:///{path}",
            f"error: There is no database at {path} (nothing was created)",
        )
    else:
        name = f"kiosk_typo_{uuid.uuid4().hex[:10]}"
        url, said = pg_url(name), f'database "{name}" does not exist'
    for args in (
        ["audit", "verify", "--database-url", url],
        ["export", "as-built", "TRV-1001", "--database-url", url],
        ["backup", str(tmp_path / "backup"), "--database-url", url, "--secret-file", str(secret)],
        ["db", "upgrade", "--database-url", url, "--secret-file", str(secret)],
    ):
        code, out, err = run(*args, data_dir=data_dir)
        assert code == 3 and out == "", args
        (line,) = err.strip().splitlines()
        assert said in line and line.startswith("error: "), line
    assert not (tmp_path / "typo").exists() and not (tmp_path / "backup").exists()
    assert not data_dir.exists() or list(data_dir.iterdir()) == []  # no plant secret either
    if backend == "postgresql":
        assert not pg_database_exists(name)


def test_the_revisions_ship_with_the_package() -> None:
    """versions/ is read by Alembic as files, not imported: the package data must name them,
    or an installed kiosk could not upgrade anything."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["kiosk"]
    kiosk = ROOT / "kiosk"
    shipped = {p for pattern in patterns for p in kiosk.glob(pattern)}
    revisions = sorted((kiosk / "server/migrations/versions").glob("*.py"))
    assert [p.name for p in revisions] == ["0001_release_1.py", "0002_release_2.py"]
    assert set(revisions) <= shipped
    assert "alembic" in " ".join(project["project"]["dependencies"])
