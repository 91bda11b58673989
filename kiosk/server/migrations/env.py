"""Alembic's entry point: runs the revisions on the connection kiosk.server.upgrade hands it.

There is no alembic.ini and no URL here: `kiosk db upgrade` opens the database itself, inside one
transaction (with SQLite's foreign keys off, for batch table rebuilds), and passes the plant's
audit key along for the revisions that seal audit records.
"""

from __future__ import annotations

from alembic import context

from kiosk.server import schema

config = context.config


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the kiosk migrations run only through `kiosk db upgrade`")
    context.configure(
        connection=connection,
        # Compared with by tests/test_migrations.py and `alembic revision --autogenerate`.
        target_metadata=schema.metadata,
        render_as_batch=True,  # SQLite alters tables by rebuilding them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("the kiosk migrations write data as well as DDL: no offline SQL scripts")
run_online()
