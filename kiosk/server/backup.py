"""Backing up a plant and restoring one: `kiosk backup DEST`, `kiosk restore SRC`.

A backup is a folder holding everything a plant is: the database (SQLite through its online backup
API, which reads one consistent snapshot while servers keep writing in WAL mode; PostgreSQL as
`pg_dump -Fc` of an exported snapshot), the plant secret (without it the badge hashes and audit
seals in the database are useless) and its witness file, with `manifest.json` naming each file's
size and SHA-256, the schema version and the audit chain's head in that snapshot. The manifest is
written last: a folder without one is not a backup.

A restore checks every file against the manifest before it touches anything, refuses to replace a
plant that is already there unless forced, restores, and verifies the result as
`kiosk audit verify` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, NoResultFound, OperationalError
from sqlalchemy.pool import NullPool

from kiosk import __version__
from kiosk.server import audit, schema
from kiosk.server.store import (
    SchemaTooNew,
    SchemaTooOld,
    Store,
    StoreError,
    normalize_url,
    require_sqlite_file,
    shown_url,
    unreachable,
)

MANIFEST = "manifest.json"
FORMAT = "kiosk-backup/1"
DATABASE_FILES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
SECRET = "plant-secret"
WITNESS = "plant-secret.witness.jsonl"


class BackupError(StoreError):
    """A backup or restore that cannot go on; the message says why, in one line."""


@dataclass(frozen=True)
class Head:
    """The schema version and the audit chain's head in one snapshot of a database."""

    schema_version: int
    seq: int
    hash: str


# --- where a plant lives --------------------------------------------------------------------------


def backend(url: str) -> str:
    name = make_url(normalize_url(url)).get_backend_name()
    if name not in DATABASE_FILES:
        raise BackupError(f"cannot back up or restore a {name} database: SQLite or PostgreSQL")
    return name


def sqlite_path(url: str) -> Path:
    database = make_url(normalize_url(url)).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(database)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that can neither create the file nor change it."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump / pg_restore take it; the password goes in the environment, not on a
    command line that `ps` shows."""
    parsed = make_url(normalize_url(url))
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    tool = command[0]
    if shutil.which(tool) is None:
        raise BackupError(
            f"{tool} is not installed here: install the PostgreSQL client of the server's "
            "version (Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{tool} failed: {lines[-1] if lines else f'exit {done.returncode}'}")


def _head(conn: Connection) -> Head:
    """Read with plain SQL: every schema version so far has these two tables."""
    try:
        version = conn.execute(
            text("SELECT value FROM meta WHERE key = 'schema_version'")
        ).scalar_one()
        head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    except (DBAPIError, NoResultFound) as exc:  # no such table or row: not a kiosk database
        raise BackupError("the database has no kiosk schema: there is no plant to back up") from exc
    return Head(int(version), int(head.seq), bytes(head.hash).hex())


# --- backup ---------------------------------------------------------------------------------------


def backup(
    url: str,
    secret_file: Path,
    dest: Path,
    now: datetime | None = None,
    *,
    files_dir: Path | None = None,
) -> dict[str, Any]:
    """Write a backup of the plant at `url` with `secret_file` into the new folder `dest`;
    with `files_dir`, the plant's kept photos and files too (kiosk/server/files.py)."""
    kind = backend(url)
    if not secret_file.is_file():
        raise BackupError(
            f"there is no plant secret at {secret_file}: a backup without it cannot restore "
            "the plant (give --secret-file)"
        )
    _require_plant(url)  # before the folder is made: a typo in the URL leaves nothing behind
    made = _new_folder(dest)
    try:
        return _write_backup(url, kind, secret_file, dest, now or datetime.now(UTC), files_dir)
    except BaseException:
        for child in dest.iterdir():  # half a backup is none: no manifest, nothing left
            child.unlink()
        if made:
            dest.rmdir()
        raise


def _require_plant(url: str) -> None:
    if backend(url) == "sqlite":
        require_sqlite_file(sqlite_path(url))
    with _plain(url) as conn:
        _head(conn)


def _write_backup(
    url: str, kind: str, secret_file: Path, dest: Path, now: datetime, files_dir: Path | None
) -> dict[str, Any]:
    files = [_copy(secret_file, dest / SECRET, "plant secret")]
    witness = audit.witness_path(secret_file)
    if witness.exists():
        # Before the database: every checkpoint it holds is then in the snapshot too (the
        # server writes a checkpoint's witness line after committing the checkpoint).
        files.append(_copy_witness(witness, dest / WITNESS))
    database = dest / DATABASE_FILES[kind]
    if kind == "sqlite":
        head = _sqlite_backup(sqlite_path(url), database)
    else:
        head = _pg_dump(url, database)
    files.insert(0, _entry(database, "database"))
    files.extend(_copy_kept_files(files_dir, dest))  # after the snapshot: every file it names
    manifest = {
        "format": FORMAT,
        "created_at": now.isoformat(),
        "kiosk_version": __version__,
        "database": {"backend": kind, "source": shown_url(url)},
        "schema_version": head.schema_version,
        "audit_head": {"seq": head.seq, "hash": head.hash},
        "files": files,
    }
    _write_synced(dest / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    return manifest


KEPT_FILE = "kept file"
"""A photo or file of the plant's file store, kept in the backup as `file-<sha256>`."""


def _copy_kept_files(files_dir: Path | None, dest: Path) -> list[dict[str, Any]]:
    """The file store's files: kept once by hash and never changed, so those there once the
    database snapshot is taken include every one it names."""
    if files_dir is None or not files_dir.is_dir():
        return []
    return [
        _copy(path, dest / f"file-{path.name}", KEPT_FILE)
        for path in sorted(files_dir.glob("??/*"))
        if path.is_file() and not path.name.startswith(".")
    ]


def _place_kept_files(src: Path, manifest: dict[str, Any], files_dir: Path | None) -> int:
    """Put the backup's kept files back in the file store (checked against the manifest by
    read_backup already, and against the hash they are named by here)."""
    if files_dir is None:
        return 0
    placed = 0
    for entry in manifest["files"]:
        name = str(entry["name"])
        if entry.get("what") != KEPT_FILE or name.removeprefix("file-") != entry["sha256"]:
            continue
        target = files_dir / entry["sha256"][:2] / entry["sha256"]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_synced(target, (src / name).read_bytes())
            placed += 1
    return placed


def _new_folder(dest: Path) -> bool:
    """Make `dest` (or take it empty), readable by its owner only: it holds the plant secret.
    Returns whether it was made here."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} already exists and is not an empty folder: give a new one")
    made = not dest.exists()
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    return made


def _copy(source: Path, target: Path, what: str) -> dict[str, Any]:
    _write_synced(target, source.read_bytes())
    return _entry(target, what)


def _copy_witness(source: Path, target: Path) -> dict[str, Any]:
    data = source.read_bytes()
    # Whole lines only: a line being appended this instant is the next backup's.
    _write_synced(target, data[: data.rfind(b"\n") + 1])
    return _entry(target, "audit witness")


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _entry(path: Path, what: str) -> dict[str, Any]:
    return {"name": path.name, "what": what, "bytes": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_backup(source: Path, copy: Path) -> Head:
    """SQLite's online backup: one step (pages=-1) is one read transaction, so the copy is one
    consistent snapshot even while servers write; a file copy could tear a page or miss the WAL."""
    _write_synced(copy, b"")  # made 0600 first: it holds the badge hashes
    with closing(_read_only(source)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        checked = dst.execute("PRAGMA integrity_check").fetchone()
    if checked is None or checked[0] != "ok":
        raise BackupError(f"the copy of {source} fails SQLite's integrity check: {checked}")
    engine = create_engine(f"sqlite:///{copy}", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _head(conn)
    finally:
        engine.dispose()


def _pg_dump(url: str, out: Path) -> Head:
    """pg_dump of a snapshot this connection exported, so the manifest's head is the dump's."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    dsn, env = _libpq(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                head = _head(conn)
                _run(
                    ["pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={out}", dsn],
                    env,
                )
    except OperationalError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()
    out.chmod(0o600)
    return head


# --- checking a backup ----------------------------------------------------------------------------


def read_backup(src: Path) -> dict[str, Any]:
    """The manifest, once every file it names is there with its size and SHA-256."""
    try:
        manifest: Any = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not a kiosk backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src / MANIFEST} cannot be read as a manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{src / MANIFEST} is not a kiosk backup manifest ({FORMAT})")
    files = _listed(src, manifest)
    for entry in files.values():
        _check_file(src, entry)
    kind = manifest["database"]["backend"]
    for needed in (DATABASE_FILES.get(kind, "?"), SECRET):
        if needed not in files:
            raise BackupError(f"refused: the backup's manifest lists no {needed}: it is incomplete")
    return manifest


def _listed(src: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        files = {str(e["name"]): e for e in manifest["files"]}
        complete = all(
            isinstance(part, str | int)
            for part in (
                manifest["database"]["backend"],
                manifest["schema_version"],
                manifest["audit_head"]["seq"],
                manifest["audit_head"]["hash"],
            )
        )
    except (KeyError, TypeError):
        complete = False
    if not complete:
        raise BackupError(f"{src / MANIFEST} is not a kiosk backup manifest ({FORMAT})")
    for name in files:
        if Path(name).name != name or name in ("", ".", ".."):
            raise BackupError(f"refused: the manifest names a file outside the backup: {name!r}")
    return files


def _check_file(src: Path, entry: dict[str, Any]) -> None:
    path = src / str(entry["name"])
    why = None
    if not path.is_file():
        why = "is missing"
    elif path.stat().st_size != entry.get("bytes"):
        why = f"has {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
    elif sha256(path) != entry.get("sha256"):
        why = "does not match its SHA-256 in the manifest"
    if why is not None:
        raise BackupError(
            f"refused: {path.name} {why}: the backup is incomplete or was changed; "
            "nothing was restored"
        )


# --- restore --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    manifest: dict[str, Any]
    ok: bool
    verdict: str
    notes: tuple[str, ...] = ()


def restore(
    src: Path, url: str, secret_file: Path, *, force: bool = False, files_dir: Path | None = None
) -> Restored:
    """Restore the backup in `src` to the database at `url` and the secret file, then verify;
    with `files_dir`, put its kept photos and files back in the file store there."""
    manifest = read_backup(src)
    kind = backend(url)
    if manifest["database"]["backend"] != kind:
        raise BackupError(
            f"refused: this backup is of a {manifest['database']['backend']} database; "
            f"restore it to a {manifest['database']['backend']} URL, not {kind}"
        )
    occupied = _occupied(url)
    if occupied and not force:
        raise BackupError(
            f"refused: {shown_url(url)} already holds a database; restore over it only with "
            "--force (nothing was changed)"
        )
    secret = (src / SECRET).read_bytes()
    moved = _secret_refusal_or_move(secret_file, secret, force)
    database = src / DATABASE_FILES[kind]
    if kind == "sqlite":
        _sqlite_restore(database, sqlite_path(url))
    else:
        _pg_restore(database, url, clean=occupied)
    notes = _place_secret(src, secret_file, secret, moved)
    _place_kept_files(src, manifest, files_dir)
    ok, verdict = verify_restored(url, secret_file, manifest)
    return Restored(manifest, ok, verdict, notes)


def _occupied(url: str) -> bool:
    """Whether the target already holds tables (a plant, or anything else)."""
    if backend(url) == "sqlite":
        path = sqlite_path(url)
        if not path.exists() or path.stat().st_size == 0:
            return False
        try:
            with closing(_read_only(path)) as conn:
                return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        except sqlite3.DatabaseError:
            return True  # not even a database: not ours to overwrite unasked
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            ).scalar_one()
    except OperationalError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()
    return bool(tables)


def _secret_refusal_or_move(secret_file: Path, secret: bytes, force: bool) -> Path | None:
    """A different plant's secret is never overwritten: refused, or with --force moved aside
    (with its witness file). Returns where it went."""
    if not secret_file.exists() or secret_file.read_bytes().strip() == secret.strip():
        return None
    if not force:
        raise BackupError(
            f"refused: {secret_file} holds a different plant secret, which that plant's database "
            "needs; give another --secret-file, or --force to move it aside (nothing was changed)"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = secret_file.with_name(f"{secret_file.name}.replaced-{stamp}")
    secret_file.rename(aside)
    witness = audit.witness_path(secret_file)
    if witness.exists():
        witness.rename(audit.witness_path(aside))
    return aside


def _place_secret(
    src: Path, secret_file: Path, secret: bytes, moved: Path | None
) -> tuple[str, ...]:
    notes = [] if moved is None else [f"the plant secret that was there is now {moved}"]
    if not secret_file.exists():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        _write_synced(secret_file, secret)
    backed_up = (src / WITNESS).read_bytes() if (src / WITNESS).exists() else b""
    kept = _keep_later_witness(audit.witness_path(secret_file), backed_up)
    if kept is not None:
        notes.append(kept)
    if backed_up:
        _write_synced(audit.witness_path(secret_file), backed_up)
    return tuple(notes)


def _keep_later_witness(target: Path, backed_up: bytes) -> str | None:
    """A witness file here with checkpoints the backup does not have saw records written after
    the backup, which the restored database no longer holds. It is evidence: moved aside and
    named, never deleted (`kiosk audit verify --witness` it to see what was lost)."""
    if not target.exists():
        return None
    ours = set(backed_up.splitlines())
    later = [line for line in target.read_bytes().splitlines() if line.strip() and line not in ours]
    if not later:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = target.with_name(f"{target.name}.before-restore-{stamp}")
    target.rename(aside)
    return (
        f"{target.name} held {len(later)} checkpoint(s) the backup does not: records written "
        f"after the backup are not in the restored database; that witness is kept as {aside}"
    )


def _sqlite_restore(copy: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Through SQLite's backup API into the target, so a WAL beside an old file is taken care of.
    with closing(_read_only(copy)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _pg_restore(dump: Path, url: str, *, clean: bool) -> None:
    dsn, env = _libpq(url)
    # One transaction: a restore that fails half way leaves the target as it was.
    command = ["pg_restore", "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error"]
    if clean:
        command += ["--clean", "--if-exists"]
    _run([*command, f"--dbname={dsn}", str(dump)], env)


# --- verifying a restored plant ---------------------------------------------------------------------


def verify_restored(url: str, secret_file: Path, manifest: dict[str, Any]) -> tuple[bool, str]:
    """`kiosk audit verify` on the result, and its head must be the one the manifest names."""
    try:
        store = Store.open(url, create=False)
    except SchemaTooOld:
        return _verify_older(url, secret_file, manifest)
    except SchemaTooNew as exc:
        return False, f"not verified: {exc}"
    try:
        with store.read() as conn:
            head = _head(conn)
            ok, line = verify_plant(conn, secret_file)
    finally:
        store.dispose()
    return _same_head(head, manifest) or (ok, line)


def verify_plant(conn: Connection, secret_file: Path) -> tuple[bool, str]:
    """What `kiosk audit verify` says, with the plant secret and the witness file beside it."""
    keys = plant_keys(secret_file)
    witness = audit.witness_path(secret_file)
    try:
        witnesses = audit.read_witnesses(witness) if witness.exists() else []
    except audit.WitnessUnreadable as exc:
        return False, f"broken: {exc}"
    verdict = audit.verify(conn, keys, witnesses)
    return verdict.ok, str(verdict)


def plant_keys(secret_file: Path) -> audit.Keys | None:
    from kiosk.server.security import PlantSecret

    if not secret_file.exists():
        return None
    secret = PlantSecret.load(secret_file)
    return audit.Keys(record=secret.audit_key(), checkpoint=secret.checkpoint_key())


def _same_head(head: Head, manifest: dict[str, Any]) -> tuple[bool, str] | None:
    want = manifest["audit_head"]
    if (head.seq, head.hash) == (want["seq"], want["hash"]):
        return None
    return False, (
        f"broken: the restored chain's head is record {head.seq}, but the backup's manifest "
        f"says {want['seq']}"
    )


def _verify_older(url: str, secret_file: Path, manifest: dict[str, Any]) -> tuple[bool, str]:
    """A backup of an older schema (the one `kiosk db upgrade` takes): this release checks its
    chain as that release would, and says what to do next."""
    from kiosk.server.migrations.chain import chain_problem

    keys = plant_keys(secret_file)
    with _plain(url) as conn:
        head = _head(conn)
        problem = chain_problem(conn, None if keys is None else keys.checkpoint)
    mismatch = _same_head(head, manifest)
    if mismatch is not None:
        return mismatch
    if problem is not None:
        return False, f"broken: {problem}"
    return True, (
        f"ok: {head.seq} records (schema version {head.schema_version}: serve it with the "
        f"release that wrote it, or run `kiosk db upgrade` to bring it to version "
        f"{schema.SCHEMA_VERSION})"
    )


@contextmanager
def _plain(url: str) -> Iterator[Connection]:
    """A connection of its own (no pool, no pragmas), for reading what any release wrote."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    except OperationalError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()
