"""`kiosk db upgrade`: bring a plant's database to this release's schema, in place, after a backup.

1. The database must exist and have a kiosk schema, and the plant secret must be at hand (the
   upgrade seals the audit trail with it; a new secret would make the badge hashes useless).
2. The audit chain is checked as its own release would (kiosk.server.migrations.chain): a chain
   that was already broken is not sealed as if it were whole, and nothing is done.
3. A backup (kiosk.server.backup) goes into a new timestamped folder beside the database (or
   under --backup-dir): restoring it is the way back.
4. Alembic runs the revisions from the database's version to HEAD in one transaction, so an
   upgrade that fails changes nothing.
5. The new head is sealed in a signed checkpoint, also written to the witness file, and the
   result is verified as `kiosk audit verify` does.

The only module that imports Alembic: the station and `kiosk serve` never load it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from kiosk.server import audit, backup, migrations, schema
from kiosk.server.migrations.chain import UpgradeRefused, chain_problem
from kiosk.server.security import PlantSecret
from kiosk.server.store import (
    SchemaTooNew,
    Store,
    StoreError,
    create_store_engine,
    normalize_url,
)


@dataclass(frozen=True)
class Upgraded:
    from_version: int
    to_version: int
    backup: Path | None = None
    ok: bool = True
    verdict: str = ""


def upgrade(
    url: str, secret_file: Path, backup_dir: Path | None = None, now: datetime | None = None
) -> Upgraded:
    now = now or datetime.now(UTC)
    secret = _plant_secret(secret_file)
    version = _version(url)
    if version == schema.SCHEMA_VERSION:
        _stamp_if_unstamped(url, version)
        return Upgraded(version, version)
    _check_chain(url, secret)
    folder = _backup_folder(url, secret_file, backup_dir, version, now)
    backup.backup(url, secret_file, folder, now)
    _migrate(url, secret, version)
    ok, verdict = _seal_and_verify(url, secret, secret_file, now)
    return Upgraded(version, schema.SCHEMA_VERSION, folder, ok, verdict)


def _plant_secret(secret_file: Path) -> PlantSecret:
    if not secret_file.is_file():
        raise StoreError(
            f"There is no plant secret at {secret_file}: the upgrade seals the audit trail with "
            "the plant's own secret (give --secret-file); a new one would orphan every badge"
        )
    return PlantSecret.load(secret_file)


def _version(url: str) -> int:
    store = Store(create_store_engine(url, create=False))
    try:
        version = store.schema_version()
    finally:
        store.dispose()
    if version is None:
        raise StoreError("The database has no kiosk schema: `kiosk serve` creates a new one.")
    if version > schema.SCHEMA_VERSION:
        raise SchemaTooNew(
            f"The database schema is version {version}, newer than this release's "
            f"{schema.SCHEMA_VERSION}: there is nothing to upgrade; upgrade the kiosk package."
        )
    if version not in migrations.REVISIONS:
        raise StoreError(f"No upgrade is known from schema version {version}.")
    return version


def _check_chain(url: str, secret: PlantSecret) -> None:
    """Before anything is written, not even the backup."""
    with _migration_connection(url) as conn:
        problem = chain_problem(conn, secret.checkpoint_key())
    if problem is not None:
        raise UpgradeRefused(
            f"Not upgraded: the audit chain is broken ({problem}); sealing it now would vouch "
            "for it. Nothing was changed: investigate with the release that wrote it, or "
            "restore a good backup."
        )


def _backup_folder(
    url: str, secret_file: Path, backup_dir: Path | None, version: int, now: datetime
) -> Path:
    if backup_dir is None:
        is_file = backup.backend(url) == "sqlite"
        # Beside a SQLite file; for PostgreSQL beside the plant secret, on the server host.
        backup_dir = backup.sqlite_path(url).parent if is_file else secret_file.parent
    return backup_dir / f"kiosk-backup-{now.strftime('%Y%m%dT%H%M%SZ')}-schema-{version}"


def alembic_config(**attributes: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    config.attributes.update(attributes)
    return config


def script_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _migrate(url: str, secret: PlantSecret, version: int) -> None:
    with _migration_connection(url) as conn:
        config = alembic_config(
            connection=conn,
            audit_key=secret.audit_key(),
            checkpoint_key=secret.checkpoint_key(),
        )
        if MigrationContext.configure(conn).get_current_revision() is None:
            # Release 1 kept no Alembic history: its `meta` row says where it stands.
            command.stamp(config, migrations.REVISIONS[version])
        command.upgrade(config, "head")
        _check_foreign_keys(conn)


def _check_foreign_keys(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL checked every row as it was written
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, row_id, parent, _ = broken[0]
        raise UpgradeRefused(
            f"Not upgraded: {table} row {row_id} refers to a missing {parent} row; nothing was "
            "changed."
        )


def _stamp_if_unstamped(url: str, version: int) -> None:
    """A current database made before the history was kept (a pre-release one) gets its stamp."""
    with _migration_connection(url) as conn:
        if MigrationContext.configure(conn).get_current_revision() is None:
            command.stamp(alembic_config(connection=conn), migrations.REVISIONS[version])


@contextmanager
def _migration_connection(url: str) -> Iterator[Connection]:
    """One connection, one transaction: it all commits at the end, or none of it does."""
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _migration_engine(url: str) -> Engine:
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_for_migrations)
    # The write lock up front: no server can slip a write in between.
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_for_migrations(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below is the only one
    cursor = dbapi_connection.cursor()
    # Off while tables are rebuilt (drop + rename would trip them); checked at the end instead.
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _seal_and_verify(
    url: str, secret: PlantSecret, secret_file: Path, now: datetime
) -> tuple[bool, str]:
    store = Store.open(url, create=False)
    try:
        with store.begin() as conn:
            checkpoint = audit.seal(conn, secret.checkpoint_key(), now)
        if checkpoint is not None:
            audit.append_witness(audit.witness_path(secret_file), checkpoint)
        with store.read() as conn:
            return backup.verify_plant(conn, secret_file)
    finally:
        store.dispose()
