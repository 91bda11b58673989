"""Release 2: schema version 2 — sealed audit records, keyed offline caches, person sessions.

Schema: users get pin_salt and pin_key_sealed, stations badge_salt and lock_hash, data items their latest value
and whether one ever failed, travelers their first step not yet complete, station verifiers the keys of version 2's offline caches, cache
issues their window and members, tickets name their column token_sha256, idempotency keys belong
to a station (primary key (station_id, key)), audit records carry a MAC; proof nonces, person
sessions, unknown-badge counts and security events are new tables; so are service accounts,
imported documents and the event publishers' cursors (the integration API), all empty.

Data:
- a person's pin_key_sealed stays empty until their badge + PIN is next checked
  (people.remember_pin fills it, with a fresh pin_salt); each station gets a random badge_salt;
- release 1's offline verifiers cannot become version 2's (those need the badge, which the
  server never keeps): they are dropped, and a person identifies offline again at a station
  after one online badge-in there;
- old cache issues get the station's window and no members, so no offline proof made with a
  release-1 cache is accepted;
- every existing audit record is sealed with its MAC under the plant's audit key, after the chain
  has been checked (kiosk.server.migrations.chain), and every tracked row is entered in the
  chain with its full state (kiosk.server.migrations.rows); a last `upgrade_schema` record marks
  where in the chain the upgrade happened.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import Connection

from kiosk.server import audit
from kiosk.server.migrations import chain, rows
from kiosk.server.migrations.chain import UpgradeRefused

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

DEFAULT_WINDOW_HOURS = 8.0  # release 1's StationConfig.offline_window_hours


def upgrade() -> None:
    conn = op.get_bind()
    attributes = context.config.attributes
    if conn.dialect.name == "postgresql":
        # Writers append to the chain under this row lock: they wait until the upgrade is done.
        conn.execute(sa.text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))
    problem = chain.chain_problem(conn, attributes.get("checkpoint_key"))
    if problem is not None:
        raise UpgradeRefused(f"the audit chain is broken ({problem})")
    _people_and_stations(conn)
    _data_items(conn)
    _travelers(conn)
    _offline_credentials(conn)
    _idempotency(conn)
    _integration()
    _new_tables()
    _quality()
    _seal(conn, attributes["audit_key"])
    conn.execute(sa.text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
    # --- engineering changes (revise): release 1 had none, both tables start empty
    _engineering_changes()
    # --- corrections and voids: values name what they correct, signatures their void ---
    _corrections_and_voids()
    # --- maintenance on assets: release 1 had none, both tables start empty ---
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(60), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
    )
    op.create_table(
        "asset_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("asset_id", "assets"),
        sa.Column(
            "traveler_id", sa.Integer(), sa.ForeignKey("travelers.id"), nullable=False, unique=True
        ),
        sa.Column("task", sa.String(60), nullable=False),
    )
    op.create_index("ix_asset_tasks_asset_id", "asset_tasks", ["asset_id"])
    # --- deviations ---
    _deviations()
    # --- documents at revision ---
    _documents()
    # --- photos and files as evidence: one-use upload links, new and empty ---
    op.create_table(
        "upload_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("session_sha256", sa.String(64), nullable=False),
        _fk("item_id", "data_items"),
        _fk("user_id", "users"),
        _station_id(),
        _at("issued_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.Column("value_id", sa.Integer(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("upload_links")  # photos and files as evidence
    raise NotImplementedError("to go back to release 1, restore the backup the upgrade took")


def _require(table: str, *columns: tuple[str, sa.types.TypeEngine[Any]]) -> None:
    """Columns just added nullable and filled in are now NOT NULL (SQLite rebuilds the table)."""
    with op.batch_alter_table(table) as batch:
        for name, kind in columns:
            batch.alter_column(name, existing_type=kind, nullable=False)


def _people_and_stations(conn: Connection) -> None:
    op.add_column("users", sa.Column("pin_salt", sa.String(32), nullable=True))
    op.add_column("users", sa.Column("pin_key_sealed", sa.String(200), nullable=True))
    op.add_column("stations", sa.Column("badge_salt", sa.String(32), nullable=True))
    # Empty until each station's next heartbeat reports the lock it was installed from.
    op.add_column("stations", sa.Column("lock_hash", sa.String(64), nullable=True))
    for table, column in (("users", "pin_salt"), ("stations", "badge_salt")):
        _random_per_row(conn, table, column)
        _require(table, (column, sa.String(32)))


def _random_per_row(conn: Connection, table: str, column: str) -> None:
    target = sa.table(table, sa.column("id"), sa.column(column))
    for (row_id,) in conn.execute(sa.select(target.c.id)):
        conn.execute(
            target.update().where(target.c.id == row_id).values({column: os.urandom(16).hex()})
        )


def _data_items(conn: Connection) -> None:
    op.add_column("data_items", sa.Column("latest_value_id", sa.Integer(), nullable=True))
    op.add_column("data_items", sa.Column("failed", sa.Boolean(), nullable=True))
    items = sa.table(
        "data_items", sa.column("id"), sa.column("latest_value_id"), sa.column("failed")
    )
    values = sa.table(
        "recorded_values", sa.column("id"), sa.column("item_id"), sa.column("passed", sa.Boolean())
    )
    mine = values.c.item_id == items.c.id
    conn.execute(
        items.update().values(
            latest_value_id=sa.select(sa.func.max(values.c.id)).where(mine).scalar_subquery(),
            failed=sa.exists().where(mine, values.c.passed.is_(False)),
        )
    )
    _require("data_items", ("failed", sa.Boolean()))


def _travelers(conn: Connection) -> None:
    """Each traveler notes its first step not yet complete (NULL once all are)."""
    op.add_column("travelers", sa.Column("current_step_id", sa.Integer(), nullable=True))
    op.create_index("ix_travelers_current_step_id", "travelers", ["current_step_id"])
    travelers = sa.table("travelers", sa.column("id"), sa.column("current_step_id"))
    steps = sa.table(
        "steps", sa.column("id"), sa.column("traveler_id"), sa.column("seq"), sa.column("status")
    )
    first_open = (
        sa.select(steps.c.id)
        .where(steps.c.traveler_id == travelers.c.id, steps.c.status != "complete")
        .order_by(steps.c.seq)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(travelers.update().values(current_step_id=first_open))


def _offline_credentials(conn: Connection) -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column(
            "ticket_sha256", new_column_name="token_sha256", existing_type=sa.String(64)
        )
    conn.execute(sa.text("DELETE FROM station_verifiers"))
    # Empty now, so NOT NULL columns can be added; SQLite adds them only by a rebuild.
    rebuild: Literal["always", "auto"] = "always" if conn.dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("station_verifiers", recreate=rebuild) as batch:
        for name in ("actor_key_sealed", "actor_key_wrapped", "signing_key_sealed"):
            batch.add_column(sa.Column(name, sa.String(200), nullable=False))
        batch.add_column(sa.Column("signing_key_wrapped", sa.String(200), nullable=True))
    op.add_column("cache_issues", sa.Column("window_hours", sa.Float(), nullable=True))
    op.add_column("cache_issues", sa.Column("members", sa.Text(), nullable=True))
    _fill_cache_issues(conn)
    _require("cache_issues", ("window_hours", sa.Float()), ("members", sa.Text()))


def _fill_cache_issues(conn: Connection) -> None:
    stations = sa.table("stations", sa.column("id"), sa.column("config"))
    issues = sa.table(
        "cache_issues", sa.column("station_id"), sa.column("window_hours"), sa.column("members")
    )
    for station_id, config in conn.execute(sa.select(stations.c.id, stations.c.config)):
        hours = json.loads(config or "{}").get("offline_window_hours", DEFAULT_WINDOW_HOURS)
        conn.execute(
            issues.update()
            .where(issues.c.station_id == station_id)
            .values(window_hours=float(hours), members="[]")
        )


def _idempotency(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # SQLite cannot alter a primary key: rebuild the table as version 2 declares it.
        with op.batch_alter_table("idempotency", recreate="always", copy_from=_IDEMPOTENCY):
            pass
        return
    op.drop_constraint("idempotency_pkey", "idempotency", type_="primary")
    op.create_primary_key("idempotency_pkey", "idempotency", ["station_id", "key"])


_IDEMPOTENCY = sa.Table(
    "idempotency",
    sa.MetaData(),
    sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id"), primary_key=True),
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("station_seq", sa.Integer(), nullable=True),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("response", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def _station_id(primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "station_id",
        sa.Integer(),
        sa.ForeignKey("stations.id"),
        primary_key=primary_key,
        nullable=False,
    )


def _at(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _new_tables() -> None:
    _labour_and_andon()
    op.create_table(
        "proof_nonces",
        _station_id(primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
    )
    op.create_table(
        "person_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        _station_id(),
        _at("issued_at"),
        _at("expires_at"),
        _at("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(20), nullable=True),
    )
    op.create_index("ix_person_sessions_station_id", "person_sessions", ["station_id"])
    op.create_table(
        "badge_misses", sa.Column("id", sa.Integer(), primary_key=True), _station_id(), _at("at")
    )
    op.create_index("ix_badge_misses_station_id", "badge_misses", ["station_id"])
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        _at("at"),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("stations.id"), nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )


def _fk(name: str, target: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), sa.ForeignKey(f"{target}.id"), nullable=nullable)


def _labour_and_andon() -> None:
    """Labour intervals and help/stop requests (release 1 recorded neither: both start empty)."""
    op.create_table(
        "labour_intervals",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("traveler_id", "travelers"),
        _fk("step_id", "steps"),
        _fk("user_id", "users"),
        _fk("station_id", "stations"),
        _at("started_at"),
        _at("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(20), nullable=True),
    )
    op.create_index("ix_labour_intervals_traveler_id", "labour_intervals", ["traveler_id"])
    op.create_index("ix_labour_intervals_user_id", "labour_intervals", ["user_id"])
    op.create_table(
        "andon_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("traveler_id", "travelers"),
        _fk("step_id", "steps"),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        _fk("raised_by", "users"),
        _fk("station_id", "stations"),
        _at("raised_at"),
        _fk("hold_id", "holds", nullable=True),
        _fk("acknowledged_by", "users", nullable=True),
        _at("acknowledged_at", nullable=True),
        _fk("resolved_by", "users", nullable=True),
        _at("resolved_at", nullable=True),
        sa.Column("resolution", sa.String(500), nullable=True),
    )
    op.create_index("ix_andon_requests_traveler_id", "andon_requests", ["traveler_id"])


def _quality() -> None:
    """Expected values, certifications and dispositions with effect: release 1 had none, so
    every new column starts empty and the certifications table has no rows."""
    op.add_column("steps", sa.Column("certification", sa.String(60), nullable=True))
    op.add_column("data_items", sa.Column("expected", sa.String(200), nullable=True))
    op.add_column("ncrs", sa.Column("rationale", sa.Text(), nullable=True))
    op.add_column("ncrs", sa.Column("instructions", sa.Text(), nullable=True))
    op.add_column("ncrs", sa.Column("approval_role", sa.String(20), nullable=True))
    with op.batch_alter_table("ncrs") as batch:  # SQLite adds a foreign key only by a rebuild
        batch.add_column(sa.Column("approval_signature_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_ncrs_approval_signature_id", "signatures", ["approval_signature_id"], ["id"]
        )
    op.create_table(
        "certifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("user_id", "users"),
        sa.Column("operation", sa.String(60), nullable=False),
        sa.Column("expires", sa.Date(), nullable=False),
        sa.UniqueConstraint("user_id", "operation"),
    )
    op.create_index("ix_certifications_user_id", "certifications", ["user_id"])


def _integration() -> None:
    """Service accounts, imported documents and the event publisher's cursor: new, empty."""
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False, unique=True),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("key_hmac", sa.String(64), nullable=False, unique=True),
        _at("created_at"),
        _at("revoked_at", nullable=True),
    )
    op.create_table(
        "integration_imports",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        _at("imported_at"),
    )
    op.create_table(
        "event_publishers",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("published", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(80), nullable=True),
        _at("lease_until", nullable=True),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity"])
    op.create_index("ix_signatures_subject", "signatures", ["subject", "subject_id"])


def _documents() -> None:
    """Documents at revision: a new, empty table, and steps that name none."""
    op.add_column("steps", sa.Column("documents", sa.Text(), nullable=True))
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(60), nullable=False),
        sa.Column("revision", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        _at("added_at"),
        sa.UniqueConstraint("number", "revision"),
    )


def _seal(conn: Connection, key: bytes) -> None:
    """Every record gets its MAC; every tracked row its record; the upgrade its mark."""
    op.add_column("audit_log", sa.Column("mac", sa.LargeBinary(32), nullable=True))
    log = chain.audit_log
    sealed = [
        {"at": seq, "mac": audit.record_mac(key, bytes(digest))}
        for seq, digest in conn.execute(sa.select(log.c.seq, log.c.hash))
    ]
    if sealed:
        conn.execute(
            log.update().where(log.c.seq == sa.bindparam("at")).values(mac=sa.bindparam("mac")),
            sealed,
        )
    _require("audit_log", ("mac", sa.LargeBinary(32)))
    appender = chain.Appender.at_head(conn, key, datetime.now(UTC))
    migrated = rows.seal_rows(conn, appender)
    mark = {"schema_version": 2, "records_sealed": len(sealed), "rows_entered": migrated}
    appender.append("upgrade_schema", "schema", mark, old={"schema_version": 1})
    appender.flush()


def _engineering_changes() -> None:
    """Engineering changes issued and the step revisions they made (kiosk.server.revise)."""
    op.create_table(
        "engineering_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(40), nullable=False, unique=True),
        _fk("work_order_id", "work_orders"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("issued_by", sa.String(120), nullable=True),
        _at("issued_at"),
        sa.Column("summary", sa.Text(), nullable=False),
    )
    op.create_table(
        "step_revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("change_id", "engineering_changes"),
        _fk("traveler_id", "travelers"),
        _fk("step_id", "steps"),
        sa.Column("old_revision", sa.String(20), nullable=False),
        sa.Column("new_revision", sa.String(20), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("redline", sa.Boolean(), nullable=False),
        _at("issued_at"),
        _fk("acknowledged_by", "users", nullable=True),
        _at("acknowledged_at", nullable=True),
        _fk("station_id", "stations", nullable=True),
    )
    op.create_index("ix_step_revisions_traveler_id", "step_revisions", ["traveler_id"])
    op.create_index("ix_step_revisions_step_id", "step_revisions", ["step_id"])
def _corrections_and_voids() -> None:
    """Corrections and voids: release 1 had none, so every new column starts empty."""
    op.add_column("recorded_values", sa.Column("corrects_id", sa.Integer(), nullable=True))
    op.add_column("recorded_values", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("signatures", sa.Column("void_signature_id", sa.Integer(), nullable=True))
    op.add_column("signatures", sa.Column("void_reason", sa.Text(), nullable=True))
def _deviations() -> None:
    """Deviations, and the one each value relied on: release 1 had none, all start empty."""
    op.add_column("recorded_values", sa.Column("deviation", sa.String(20), nullable=True))
    op.create_index("ix_recorded_values_deviation", "recorded_values", ["deviation"])
    op.create_table(
        "deviations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("part_number", sa.String(40), nullable=True),
        sa.Column("travelers", sa.Text(), nullable=True),
        sa.Column("steps", sa.Text(), nullable=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("substitute", sa.String(60), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=True),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("raised_by", sa.String(120), nullable=False),
        _at("raised_at"),
        sa.Column("approval_role", sa.String(20), nullable=True),
    )
    op.create_index("ix_deviations_part_number", "deviations", ["part_number"])
