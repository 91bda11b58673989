"""The reference server's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Bump when a table changes; a binary refuses a database whose version is newer than this.
SCHEMA_VERSION = 1

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in time, written and read back as aware UTC on every database.

    SQLite has no zoned type: SQLAlchemy writes the wall-clock digits and drops the offset, so a
    station time of 08:00-05:00 would come back as a naive 08:00 (five hours off, and no longer
    matching the audit hash made from it). Converting to UTC on the way in and tagging UTC on the
    way out gives the same instant on SQLite and PostgreSQL. A naive value is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _at(name: str, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    _id(),
    Column("name", String(120), nullable=False),
    Column("roles", String(200), nullable=False),  # comma-separated Role values
    Column("work_centers", String(500), nullable=False),  # comma-separated qualifications, * = all
    Column("badge_hmac", String(64), nullable=False, unique=True),
    Column("pin_hash", String(200), nullable=False),
    Column("failed_pins", Integer, nullable=False, default=0),
    Column("locked", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
)

stations = Table(
    "stations",
    metadata,
    _id(),
    Column("name", String(80), nullable=False, unique=True),
    Column("work_center", String(40), nullable=False),
    Column("token_sha256", String(64), unique=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("config", Text, nullable=False, default="{}"),  # StationConfig as JSON
    Column("config_version", Integer, nullable=False, default=1),
)

enrollment_codes = Table(
    "enrollment_codes",
    metadata,
    Column("code_sha256", String(64), primary_key=True),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("expires_at"),
    _at("used_at", nullable=True),
)

work_orders = Table(
    "work_orders",
    metadata,
    _id(),
    Column("number", String(40), nullable=False, unique=True),
    Column("part_number", String(40), nullable=False),
    Column("part_name", String(120), nullable=False),
    Column("quantity", Integer, nullable=False),
)

travelers = Table(
    "travelers",
    metadata,
    _id(),
    Column("number", String(40), nullable=False, unique=True),
    Column("work_order_id", ForeignKey("work_orders.id"), nullable=False),
    Column("serial", String(60)),
    Column("lot", String(60)),
)

operations = Table(
    "operations",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False),
    Column("number", String(20), nullable=False),
    Column("name", String(120), nullable=False),
    Column("work_center", String(40), nullable=False),
)

steps = Table(
    "steps",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("operation_id", ForeignKey("operations.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("number", String(20), nullable=False),
    Column("title", String(200), nullable=False),
    Column("instructions", Text, nullable=False),
    Column("revision", String(20), nullable=False),
    Column("inspection", Boolean, nullable=False, default=False),
    Column("status", String(20), nullable=False, default="not_started"),
    UniqueConstraint("traveler_id", "seq"),
)

data_items = Table(
    "data_items",
    metadata,
    _id(),
    Column("step_id", ForeignKey("steps.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("label", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("unit", String(20)),
    Column("nominal", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("required", Boolean, nullable=False, default=True),
)

recorded_values = Table(
    "recorded_values",
    metadata,
    _id(),
    Column("item_id", ForeignKey("data_items.id"), nullable=False, index=True),
    Column("value", Text, nullable=False),
    Column("passed", Boolean),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("server_time"),
    _at("station_time", nullable=True),
    Column("offline", Boolean, nullable=False, default=False),
)

signatures = Table(
    "signatures",
    metadata,
    _id(),
    Column("subject", String(20), nullable=False),  # step, hold, ncr
    Column("subject_id", Integer, nullable=False),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("printed_name", String(120), nullable=False),
    Column("meaning", String(20), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("server_time"),
    _at("station_time", nullable=True),
    Column("offline", Boolean, nullable=False, default=False),
    Column("content_hash", String(64), nullable=False),
)

tools = Table(
    "tools",
    metadata,
    _id(),
    Column("code", String(40), nullable=False, unique=True),
    Column("description", String(200), nullable=False),
    Column("calibration_due", Date, nullable=False),
)

material_lots = Table(
    "material_lots",
    metadata,
    _id(),
    Column("code", String(60), nullable=False, unique=True),
    Column("part_number", String(40), nullable=False),
    Column("description", String(200), nullable=False),
)

consumption = Table(
    "consumption",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("value_id", ForeignKey("recorded_values.id"), nullable=False),
    Column("lot_id", ForeignKey("material_lots.id"), nullable=False),
)

tool_uses = Table(
    "tool_uses",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("value_id", ForeignKey("recorded_values.id"), nullable=False),
    Column("tool_id", ForeignKey("tools.id"), nullable=False),
)

holds = Table(
    "holds",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("reason", String(500), nullable=False),
    Column("placed_by", ForeignKey("users.id"), nullable=False),
    _at("placed_at"),
    Column("ncr_id", ForeignKey("ncrs.id")),
    Column("released_signature_id", ForeignKey("signatures.id")),
)

ncrs = Table(
    "ncrs",
    metadata,
    _id(),
    Column("number", String(20), nullable=False, unique=True),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("step_id", ForeignKey("steps.id")),
    Column("item_id", ForeignKey("data_items.id")),
    Column("description", Text, nullable=False),
    Column("defect_code", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("raised_by", ForeignKey("users.id"), nullable=False),
    _at("raised_at"),
    Column("disposition", String(20)),
    Column("disposition_signature_id", ForeignKey("signatures.id")),
)

# Single-use signing tickets: POST /verify checked badge + PIN; the queued signature redeems it.
tickets = Table(
    "tickets",
    metadata,
    Column("ticket_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("issued_at"),
    _at("expires_at"),
    _at("used_at", nullable=True),
)

# A person's badge verifier for one station's offline cache: HMAC(station key, badge). The server
# never keeps badge numbers, so it can make one only while it sees the badge, at an online
# badge-in or signature at that station; a person can therefore identify offline only at stations
# where they have identified online before.
station_verifiers = Table(
    "station_verifiers",
    metadata,
    Column("station_id", ForeignKey("stations.id"), primary_key=True),
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("verifier", String(64), nullable=False),
)

# When each station was last handed its offline credential cache (offline signatures are
# accepted only within the window after one of these).
cache_issues = Table(
    "cache_issues",
    metadata,
    _id(),
    Column("station_id", ForeignKey("stations.id"), nullable=False, index=True),
    _at("issued_at"),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("station_id", ForeignKey("stations.id"), primary_key=True),
    _at("received_at"),
    Column("body", Text, nullable=False),  # the last Heartbeat as JSON
)

# An admin identified by badge + PIN at a station or in `kiosk admin`; admin routes need one.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("expires_at"),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    Column("station_seq", Integer, nullable=True),
    Column("payload_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    _at("created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    _at("server_time"),
    _at("station_time", nullable=True),
    Column("station", String(80), nullable=True),
    Column("actor", String(120), nullable=True),
    Column("action", String(40), nullable=False),
    Column("entity", String(80), nullable=False),
    Column("old", Text, nullable=True),
    Column("new", Text, nullable=True),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# The chain's head at moments in time, MAC'd with a key derived from the plant secret (kept outside
# the database): someone who can write the database can recompute every hash, but not these.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    _id(),
    Column("seq", Integer, nullable=False, index=True),
    Column("hash", LargeBinary(32), nullable=False),
    Column("mac", String(64), nullable=False),
    _at("server_time"),
)

# One row, locked while appending, so concurrent server processes extend the chain one at a time.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)
