"""Release 1: schema version 1, as release 1 created it with `metadata.create_all`.

The baseline. Release 1 kept no Alembic history: `kiosk db upgrade` stamps such a database with
this revision (its `meta` row says version 1) before taking it further. There is nothing to do
here; a database of version 1 is made only by release 1 itself.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    raise NotImplementedError("release 1 is the first schema: restore a backup to go back further")
