"""The store: one engine, one schema, transactions that are durable on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: the threads of one process still queue
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from kiosk.server import migrations, schema, values_behind
from kiosk.server.settings import DATABASE_CONNECTIONS


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNew(StoreError):
    pass


class SchemaTooOld(StoreError):
    pass


AUDIT_KEY = "kiosk.audit_key"
"""Where a connection carries the key that seals audit records (see kiosk.server.audit)."""
PENDING_AUDIT = "kiosk.pending_audit"
"""Where a transaction keeps the audit records it appended, until they are written at commit."""
_SCRATCH = "kiosk.scratch"
BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for its turn before the request fails."""
CONNECTION_WAIT_S = 5.0
"""How long a request waits for one of them before it is answered 503 (the station retries)."""


def scratch(conn: Connection) -> dict[str, Any]:
    """What one transaction may remember between its statements (a batch's checked sessions):
    gone when the transaction ends, never seen by the next one on the same pooled connection."""
    found: dict[str, Any] = conn.info.setdefault(_SCRATCH, {})
    return found


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and bare file paths; pick the drivers we ship."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite opens transactions lazily and on its own terms; take control (SQLAlchemy recipe)
    # so BEGIN IMMEDIATE below is the only transaction start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + FULL: every commit is synced, so a power cut cannot take back a confirmed write.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


READ_ONLY = "kiosk_read_only"
"""Execution option of a transaction that only reads: on SQLite it takes no write lock."""


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front: two writers never both read then collide. A read
    # (a token check, a traveler fetched) begins deferred and never waits for the writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriterLock:
    """One writer at a time on a SQLite file, handed to the next the moment the last commits.

    SQLite lets one transaction write; a second BEGIN IMMEDIATE waits in SQLite's busy handler,
    which sleeps and tries again (1, 2, 5 … up to 100 ms apart) rather than waking when the lock
    frees. With 50 stations writing at once, writers spent most of their time asleep while the
    database stood idle. Here the threads of one process queue on a lock and server processes on
    flock(2) of a lock file (`_lock_file`): both wake the next writer at once. SQLite's own lock
    still guards the database against any writer that does not take this one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = -1
        self._thread = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        self._reopen_after_fork()
        # As long as SQLite's busy timeout: a writer stuck for that long is an error there too.
        if not self._thread.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreError(f"No write turn on {self.path.name} within {BUSY_TIMEOUT_S:.0f} s.")
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _reopen_after_fork(self) -> None:
        if self._pid == os.getpid():
            return
        with _LOCKS_GUARD:
            if self._pid == os.getpid():
                return
            self._thread = threading.Lock()
            self._fd = None
            if fcntl is not None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()


_LOCKS: dict[Path, WriterLock] = {}
_BY_NAME: dict[str, WriterLock] = {}
"""The same locks by the name a URL gives the file: found without asking the filesystem."""
_LOCKS_GUARD = threading.Lock()


def writer_lock(engine: Engine) -> WriterLock | None:
    """The writer lock of a SQLite file (one per file in a process, shared by its engines);
    None for PostgreSQL, which lets writers run side by side and orders them itself."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    found = _BY_NAME.get(database)
    if found is not None:
        return found
    path = Path(database).resolve()
    with _LOCKS_GUARD:
        found = _LOCKS.get(path)
        if found is None:
            found = _LOCKS[path] = WriterLock(_lock_file(path))
        _BY_NAME[database] = found
    return found


def _lock_file(database: Path) -> Path:
    """Where the writer lock of `database` lives: in the temporary directory, named by a hash of
    the file's path, never beside the database (a backup or an upgrade finds only its files).
    Processes that do not share it still write correctly: SQLite's own lock then orders them."""
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"kiosk-writer-{digest}.lock"


def writing(engine: Engine) -> Any:
    """Hold `engine`'s writer lock (if it has one) around a transaction that writes."""
    lock = writer_lock(engine)
    return nullcontext() if lock is None else lock.held()


def create_store_engine(
    url: str, *, create: bool = True, connections: int = DATABASE_CONNECTIONS
) -> Engine:
    """An engine for `url`; with `create=False` a SQLite file that is not there is an error
    (StoreError) rather than a new, empty database. On PostgreSQL it holds at most `connections`
    connections, never more: the database server refuses any beyond its max_connections (100 by
    default) to every process of the plant at once, so each process keeps to its share."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            if not create:
                require_sqlite_file(Path(parsed.database))
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled, one connection for each thread that may serve a request at once (FastAPI's pool of
        # 40 worker threads): a request never waits for a connection, only, when it writes, for
        # SQLite's one writer. The pragmas run once per connection, not once per request.
        engine = create_engine(url, pool_size=8, max_overflow=32, pool_timeout=30)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        values_behind.watch(engine)
        return engine
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=connections,
        max_overflow=0,
        pool_timeout=CONNECTION_WAIT_S,
    )
    values_behind.watch(engine)
    return engine


def require_sqlite_file(path: Path) -> None:
    # sqlite3 makes an empty file for any path it is given: a typo would become a new plant.
    if not path.is_file():
        raise StoreError(
            f"There is no database at {path} (nothing was created): check --database-url "
            "or $KIOSK_DATABASE_URL."
        )


def shown_url(url: str) -> str:
    """The URL for a message: without its password."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def unreachable(url: str, exc: OperationalError) -> StoreError:
    """A database that cannot be opened, in one line: where, and the server's own reason."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    reason = reason.rpartition("FATAL:")[2].strip() or reason
    return StoreError(f"Cannot open the database {shown_url(url)}: {reason}.")


class Store:
    """The database behind the execution API."""

    def __init__(self, engine: Engine, audit_key: bytes | None = None) -> None:
        self.engine = engine
        self.audit_key = audit_key

    @classmethod
    def open(
        cls,
        url: str,
        *,
        create: bool = True,
        audit_key: bytes | None = None,
        connections: int = DATABASE_CONNECTIONS,
    ) -> Store:
        """Open the database at `url`, creating the schema if it is empty.

        `audit_key` (from the plant secret) seals every audit record written through this store;
        without it the store can be read and verified, but appending to the audit trail fails.
        Raises SchemaTooNew / SchemaTooOld when the database is of another release.
        """
        store = cls(create_store_engine(url, create=create, connections=connections), audit_key)
        try:
            store.check_schema(create=create)
        except OperationalError as exc:  # no such PostgreSQL database, no server, no access
            store.dispose()
            raise unreachable(url, exc) from None
        return store

    def connections_allowed(self) -> int | None:
        """How many connections PostgreSQL lets ordinary users open, all clients together
        (max_connections less those kept for superusers); None on SQLite, which has no limit."""
        if self.dialect != "postgresql":
            return None
        with self.read() as conn:
            allowed = conn.exec_driver_sql(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            ).scalar_one()
        return int(allowed)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction that may write. What it appends to the audit trail is written, in one
        go, just before it commits (kiosk.server.audit), so the chain's head is held briefly."""
        from kiosk.server.audit import Pending  # audit builds on this module

        with writing(self.engine), self.engine.begin() as conn:
            conn.info[AUDIT_KEY] = self.audit_key
            conn.info[PENDING_AUDIT] = pending = Pending()
            try:
                yield conn
                values_behind.write(conn)
                pending.write(conn)
            finally:
                conn.info.pop(PENDING_AUDIT, None)
                conn.info.pop(_SCRATCH, None)
                values_behind.forget(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads: a consistent snapshot, no write lock taken."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            try:
                yield conn
            finally:
                conn.info.pop(_SCRATCH, None)

    def check_schema(self, *, create: bool) -> None:
        with self.begin() if create else self.read() as conn:
            version = self._stored_version(conn)
            if version is None:
                if not create:
                    raise StoreError("The database has no kiosk schema; run `kiosk serve` once.")
                _create_schema(conn)
                return
        if version < schema.SCHEMA_VERSION:
            raise SchemaTooOld(
                f"The database schema is version {version}, from an older kiosk release; this "
                f"release needs version {schema.SCHEMA_VERSION}: stop its servers and run "
                "`kiosk db upgrade` with the same --database-url and --secret-file (it takes a "
                "backup first)."
            )
        if version > schema.SCHEMA_VERSION:
            raise SchemaTooNew(
                f"The database schema is version {version}, but this kiosk release understands "
                f"up to version {schema.SCHEMA_VERSION}. Upgrade the kiosk package before "
                "using this database."
            )

    def schema_version(self) -> int | None:
        """The `schema_version` the database says it has; None where it has no kiosk schema."""
        with self.read() as conn:
            return self._stored_version(conn)

    def _stored_version(self, conn: Connection) -> int | None:
        if not conn.dialect.has_table(conn, "meta"):
            return None
        row = conn.execute(
            select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
        ).scalar_one_or_none()
        return None if row is None else int(row)

    def is_empty(self) -> bool:
        with self.begin() as conn:
            return conn.execute(select(schema.users.c.id).limit(1)).first() is None

    def dispose(self) -> None:
        self.engine.dispose()


def _create_schema(conn: Connection) -> None:
    """A new database: this release's tables, stamped with the Alembic revision they are (the
    row `alembic stamp head` would write), so `kiosk db upgrade` knows where it starts from."""
    schema.metadata.create_all(conn)
    version = str(schema.SCHEMA_VERSION)
    conn.execute(schema.meta.insert().values(key="schema_version", value=version))
    conn.execute(schema.audit_head.insert().values(id=1, seq=0, hash=bytes(32)))
    migrations.version_table.create(conn)
    revision = migrations.REVISIONS[schema.SCHEMA_VERSION]
    conn.execute(migrations.version_table.insert().values(version_num=revision))
