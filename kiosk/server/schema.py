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
    Index,
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
SCHEMA_VERSION = 2

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
    # argon2id(badge + PIN) under pin_salt, sealed under the plant secret: lets the server wrap a
    # person's signing key for any station's offline cache without ever keeping the PIN.
    Column("pin_salt", String(32), nullable=False),
    Column("pin_key_sealed", String(200), nullable=True),
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
    Column("badge_salt", String(32), nullable=False),  # argon2 salt of this station's cache
    # SHA-256 of the dependency lock the station last reported (kiosk.locks); None until then.
    Column("lock_hash", String(64), nullable=True),
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
    # The first step not yet complete (None once all are), kept as steps complete: the queue
    # finds a work center's travelers without reading every step of every traveler.
    Column("current_step_id", Integer, nullable=True, index=True),
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
    Column("certification", String(60), nullable=True),  # what starting or signing it needs
    # The documents it shows, by number and revision (JSON list; None: none): part of the step's
    # own row, so a changed reference is a change of the step and of what its signers saw.
    Column("documents", Text, nullable=True),
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
    Column("expected", String(200), nullable=True),  # value or pattern; a lot's part number
    # Kept as values are recorded, so that an action reads its item's state in one row whatever
    # the item's history: the newest value's id (no foreign key: values refer to items), and
    # whether any value on it ever failed.
    Column("latest_value_id", Integer, nullable=True),
    Column("failed", Boolean, nullable=False, default=False),
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
    Column("deviation", String(20), nullable=True, index=True),  # the deviation it relied on
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
    Column("rationale", Text, nullable=True),
    Column("instructions", Text, nullable=True),
    # Use-as-is and repair: the role whose second approval they need (plant config at the time).
    Column("approval_role", String(20), nullable=True),
    Column(  # named: migration 0002 adds it to an existing table, which needs a name
        "approval_signature_id",
        ForeignKey("signatures.id", name="fk_ncrs_approval_signature_id"),
        nullable=True,
    ),
)

# A person's certification for one operation type, good until `expires` (inclusive).
certifications = Table(
    "certifications",
    metadata,
    _id(),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("operation", String(60), nullable=False),
    Column("expires", Date, nullable=False),
    UniqueConstraint("user_id", "operation"),
)
# One person clocked on one step, from start/resume to pause, sign-off, sign-out or idle lock.
labour_intervals = Table(
    "labour_intervals",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("step_id", ForeignKey("steps.id"), nullable=False),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("started_at"),
    _at("ended_at", nullable=True),
    Column("end_reason", String(20), nullable=True),
)
# Help and stop requests (andon); a stop names the hold it placed.
andon_requests = Table(
    "andon_requests",
    metadata,
    _id(),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("step_id", ForeignKey("steps.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("raised_by", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("raised_at"),
    Column("hold_id", ForeignKey("holds.id"), nullable=True),
    Column("acknowledged_by", ForeignKey("users.id"), nullable=True),
    _at("acknowledged_at", nullable=True),
    Column("resolved_by", ForeignKey("users.id"), nullable=True),
    _at("resolved_at", nullable=True),
    Column("resolution", String(500), nullable=True),
)

# Single-use signing tickets: POST /verify checked badge + PIN; the queued signature redeems it.
tickets = Table(
    "tickets",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("issued_at"),
    _at("expires_at"),
    _at("used_at", nullable=True),
)

# A person's entry in one station's offline cache. The server never keeps badge numbers, so it can
# make the verifier and the badge-wrapped actor key only while it sees the badge, at an online
# badge-in or signature at that station: a person can identify offline only at stations where they
# have identified online before. The person's keys for this station are kept sealed under the
# plant secret (to check the MACs they make) and wrapped for the station (to be unwrapped there).
station_verifiers = Table(
    "station_verifiers",
    metadata,
    Column("station_id", ForeignKey("stations.id"), primary_key=True),
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("verifier", String(64), nullable=False),
    Column("actor_key_sealed", String(200), nullable=False),
    Column("actor_key_wrapped", String(200), nullable=False),
    Column("signing_key_sealed", String(200), nullable=False),
    Column("signing_key_wrapped", String(200), nullable=True),
)

# Each offline credential cache handed to a station, and who was in it: offline proofs name the
# cache they were made with, and stand only for its members, within its window.
cache_issues = Table(
    "cache_issues",
    metadata,
    _id(),
    Column("station_id", ForeignKey("stations.id"), nullable=False, index=True),
    _at("issued_at"),
    Column("window_hours", Float, nullable=False),
    Column("members", Text, nullable=False),  # JSON list of user ids
)

# Nonces of the offline proofs already used at each station: a proof is good once.
proof_nonces = Table(
    "proof_nonces",
    metadata,
    Column("station_id", ForeignKey("stations.id"), primary_key=True),
    Column("nonce", String(64), primary_key=True),
)

# A person session: issued at an online badge-in, good only at that station, ended by sign-out,
# the idle lock, the next badge-in there, or expiry.
person_sessions = Table(
    "person_sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False, index=True),
    _at("issued_at"),
    _at("expires_at"),
    _at("ended_at", nullable=True),
    Column("end_reason", String(20), nullable=True),
)

# Unknown badges presented at each station, for the rate limit that stops a station walking the
# badge space (old rows are pruned as new ones come).
badge_misses = Table(
    "badge_misses",
    metadata,
    _id(),
    Column("station_id", ForeignKey("stations.id"), nullable=False, index=True),
    _at("at"),
)

# What an admin should look at: lock-outs, bursts of unknown badges, offline signatures accepted.
security_events = Table(
    "security_events",
    metadata,
    _id(),
    _at("at"),
    Column("station_id", ForeignKey("stations.id"), nullable=True),
    Column("kind", String(30), nullable=False),
    Column("detail", Text, nullable=False),
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

# Keys live in one namespace per station: another station sending the same key gets its own answer.
idempotency = Table(
    "idempotency",
    metadata,
    Column("station_id", ForeignKey("stations.id"), primary_key=True),
    Column("key", String(100), primary_key=True),
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
    # HMAC of the hash under a key derived from the plant secret: whoever rewrites the chain and
    # recomputes every hash still cannot make these, so the first rewritten record is named.
    Column("mac", LargeBinary(32), nullable=False),
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

# --- integration (kiosk/server/integration.py, events.py, mqtt.py) ---------------------------------

# ERP, MES and QMS systems. The key is shown once; only its HMAC under the plant secret is kept.
service_accounts = Table(
    "service_accounts",
    metadata,
    _id(),
    Column("name", String(40), nullable=False, unique=True),
    Column("scopes", String(100), nullable=False),  # comma-separated Scope values
    Column("key_hmac", String(64), nullable=False, unique=True),
    _at("created_at"),
    _at("revoked_at", nullable=True),
)

# Each document POST /api/v1/import applied, by the SHA-256 of its canonical JSON: the same
# document again changes nothing, and the answer says when it was first imported.
integration_imports = Table(
    "integration_imports",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("account", String(40), nullable=False),
    Column("summary", Text, nullable=False),  # the ImportSummary as JSON
    _at("imported_at"),
)

# Where each event publisher (the MQTT one) has got to in the audit chain, and which server
# process holds it: one publishes at a time, the others wait for its lease to lapse.
event_publishers = Table(
    "event_publishers",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("cursor", Integer, nullable=False),
    Column("published", Integer, nullable=False),
    Column("owner", String(80), nullable=True),
    _at("lease_until", nullable=True),
)

# --- deviations (kiosk/server/deviations.py) -----------------------------------------------------

# A planned departure for one data item (by label) of a part number's and/or named travelers'
# steps: widened limits or a substitute; effective once approved by signature (subject
# "deviation" in signatures). The travelers it covers are kept as ",TRV-1,TRV-2," to be found by
# LIKE; the units used are the travelers whose values name it (recorded_values.deviation).
deviations = Table(
    "deviations",
    metadata,
    _id(),
    Column("number", String(20), nullable=False, unique=True),
    Column("part_number", String(40), nullable=True, index=True),
    Column("travelers", Text, nullable=True),
    Column("steps", Text, nullable=True),
    Column("item", String(200), nullable=False),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Column("substitute", String(60), nullable=True),
    Column("reason", Text, nullable=False),
    Column("units", Integer, nullable=True),
    Column("until", Date, nullable=True),
    Column("raised_by", String(120), nullable=False),
    _at("raised_at"),
    Column("approval_role", String(20), nullable=True),  # the second approver's (plant config)
)
# --- documents at revision (kiosk/server/documents.py) ----------------------------------------------

# A drawing or specification at one revision: its bytes in the file store under `sha256`, the
# row in the audit chain (`document:N`), so a changed row or a swapped file is named by verify.
documents = Table(
    "documents",
    metadata,
    _id(),
    Column("number", String(60), nullable=False),
    Column("revision", String(20), nullable=False),
    Column("title", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("media_type", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    _at("added_at"),
    UniqueConstraint("number", "revision"),
)
# Photos and files as evidence: one-use upload links (kiosk/server/evidence.py). Issued on a
# person session for one photo or file item; the secret is kept only as its SHA-256; used once.
upload_links = Table(
    "upload_links",
    metadata,
    _id(),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("session_sha256", String(64), nullable=False),  # the person session it was issued on
    Column("item_id", ForeignKey("data_items.id"), nullable=False),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("station_id", ForeignKey("stations.id"), nullable=False),
    _at("issued_at"),
    _at("expires_at"),
    _at("used_at", nullable=True),
    Column("value_id", Integer, nullable=True),  # the recorded value the upload became
)

# The event feed finds a traveler's steps' records by entity (kiosk/server/events.py).
Index("ix_audit_log_entity", audit_log.c.entity)
# A step's, hold's or NCR's signatures: read with every action on a signed step.
Index("ix_signatures_subject", signatures.c.subject, signatures.c.subject_id)

# --- engineering changes (kiosk/server/revise.py) ----------------------------------------------------

# Each engineering change issued (`kiosk revise`, POST /api/v1/revise), by its number: the same
# change again with the same content changes nothing; with other content it is refused.
engineering_changes = Table(
    "engineering_changes",
    metadata,
    _id(),
    Column("number", String(40), nullable=False, unique=True),
    Column("work_order_id", ForeignKey("work_orders.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the revision document's canonical JSON
    Column("issued_by", String(120), nullable=True),  # the service account (None: `kiosk revise`)
    _at("issued_at"),
    Column("summary", Text, nullable=False),  # counts, as JSON
)

# One traveler's step brought to a new revision by a change: silently when not yet started, as a
# redline its operator acknowledges when in work. `content` is the step as revised (StepSpec JSON).
step_revisions = Table(
    "step_revisions",
    metadata,
    _id(),
    Column("change_id", ForeignKey("engineering_changes.id"), nullable=False),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, index=True),
    Column("step_id", ForeignKey("steps.id"), nullable=False, index=True),
    Column("old_revision", String(20), nullable=False),
    Column("new_revision", String(20), nullable=False),
    Column("changes", Text, nullable=False),  # JSON list of lines, what changed in words
    Column("content", Text, nullable=False),
    Column("redline", Boolean, nullable=False),
    _at("issued_at"),
    Column("acknowledged_by", ForeignKey("users.id"), nullable=True),
    _at("acknowledged_at", nullable=True),
    Column("station_id", ForeignKey("stations.id"), nullable=True),
)
# --- corrections and voids -------------------------------------------------------------------------
# A correction is a recorded value naming the value it corrects (the item's value in effect until
# then) and why; a voided signature names the void's own signature (quality's) and why. Plain
# integers, as data_items.latest_value_id: rows of the same table, refused by the rules, never
# deleted.
recorded_values.append_column(Column("corrects_id", Integer, nullable=True))
recorded_values.append_column(Column("reason", Text, nullable=True))
signatures.append_column(Column("void_signature_id", Integer, nullable=True))
signatures.append_column(Column("void_reason", Text, nullable=True))
# --- maintenance on assets (kiosk/server/erp.py) ---------------------------------------------------

# What maintenance tasks are done on: a tail number or an equipment id (`code`), imported with
# its first task and never changed after.
assets = Table(
    "assets",
    metadata,
    _id(),
    Column("code", String(60), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),  # AssetKind
    Column("description", String(200), nullable=False),
)
# A traveler that is a maintenance task on an asset, with its task number (task card).
asset_tasks = Table(
    "asset_tasks",
    metadata,
    _id(),
    Column("asset_id", ForeignKey("assets.id"), nullable=False, index=True),
    Column("traveler_id", ForeignKey("travelers.id"), nullable=False, unique=True),
    Column("task", String(60), nullable=False),
)
