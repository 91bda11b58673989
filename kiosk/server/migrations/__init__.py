"""The schema's history as Alembic migrations, run by `kiosk db upgrade` (kiosk.server.upgrade).

Only Alembic reads `env.py` and `versions/`; this module itself is light (no Alembic), because the
store needs two facts from it on every start: which revision a freshly created database is at,
and the table Alembic keeps that in. A new database is made with `metadata.create_all` and
stamped with HEAD (the same row `alembic stamp head` writes), and tests/test_migrations.py proves
that this and "release 1 + every migration" give the same schema.

When a table changes: bump schema.SCHEMA_VERSION, add a revision under versions/ that takes the
previous version's databases to the new one (frozen: it must not read schema.py, which moves on),
and map the new version to it in REVISIONS.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

HERE = Path(__file__).resolve().parent

REVISIONS = {1: "0001", 2: "0002"}
"""The Alembic revision of each schema version (the `schema_version` row in `meta`)."""

HEAD = REVISIONS[max(REVISIONS)]

# Exactly the table `alembic stamp` creates (alembic.runtime.migration), so that a database
# stamped here and one stamped by Alembic are the same.
version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
