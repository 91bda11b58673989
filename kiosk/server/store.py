"""The store: one engine, one schema, transactions that are durable on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url

from kiosk.server import schema


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNew(StoreError):
    pass


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
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front: two writers never both read then collide.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled: the pragmas run once per connection, not once per request.
        engine = create_engine(url, pool_size=4, max_overflow=4)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Store:
    """The database behind the execution API."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open the database at `url`, creating the schema if it is empty.

        Raises SchemaTooNew when the database was written by a newer release.
        """
        store = cls(create_store_engine(url))
        store.check_schema(create=create)
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def check_schema(self, *, create: bool) -> None:
        with self.begin() as conn:
            version = self._stored_version(conn)
            if version is None:
                if not create:
                    raise StoreError("The database has no kiosk schema; run `kiosk serve` once.")
                schema.metadata.create_all(conn)
                conn.execute(
                    schema.meta.insert().values(
                        key="schema_version", value=str(schema.SCHEMA_VERSION)
                    )
                )
                conn.execute(schema.audit_head.insert().values(id=1, seq=0, hash=bytes(32)))
                return
        if version > schema.SCHEMA_VERSION:
            raise SchemaTooNew(
                f"The database schema is version {version}, but this kiosk release understands "
                f"up to version {schema.SCHEMA_VERSION}. Upgrade the kiosk package before "
                "using this database."
            )

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
