"""The fleet as admins see it: heartbeats, drift, silence, holds, NCRs, locked people, codes,
and the central station config they change.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from kiosk import __version__, rules
from kiosk.locks import lock_hash
from kiosk.rules import Refusal
from kiosk.server import andon, audit, views
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.security import token_digest
from kiosk.wire import (
    AdminSession,
    EnrollmentCode,
    Heartbeat,
    HeldTraveler,
    OpenNcr,
    Person,
    PlantOverview,
    SecurityEvent,
    StationConfig,
    StationStatus,
)

SILENT_AFTER = timedelta(minutes=2)
ADMIN_SESSION = timedelta(hours=8)


def record_heartbeat(conn: Connection, station: StationRef, beat: Heartbeat, now: datetime) -> int:
    conn.execute(delete(t.heartbeats).where(t.heartbeats.c.station_id == station.id))
    # Kept on the station's row too: the lock it runs is a property of the station, like its config.
    conn.execute(
        update(t.stations).where(t.stations.c.id == station.id).values(lock_hash=beat.lock_hash)
    )
    conn.execute(
        insert(t.heartbeats).values(
            station_id=station.id, received_at=now, body=beat.model_dump_json()
        )
    )
    return int(
        conn.execute(
            select(t.stations.c.config_version).where(t.stations.c.id == station.id)
        ).scalar_one()
    )


# --- admin sessions -----------------------------------------------------------------------------


def open_session(
    conn: Connection, station: StationRef, admin: Person, now: datetime
) -> AdminSession:
    rules.require_role(admin, rules.ADMIN_ROLES, "open the admin console")
    token = secrets.token_urlsafe(32)
    expires = now + ADMIN_SESSION
    conn.execute(
        insert(t.admin_sessions).values(
            token_sha256=token_digest(token),
            user_id=admin.id,
            station_id=station.id,
            expires_at=expires,
        )
    )
    audit.append(
        conn,
        action="admin_session",
        entity=f"user:{admin.id}",
        actor=admin.name,
        station=station.name,
    )
    return AdminSession(admin=admin, token=token, expires_at=expires)


def session_admin(
    conn: Connection, station: StationRef, token: str | None, now: datetime
) -> Person:
    """Deny by default: admin routes need a live session opened with an admin's badge + PIN."""
    row = None
    if token:
        row = conn.execute(
            select(t.admin_sessions).where(t.admin_sessions.c.token_sha256 == token_digest(token))
        ).one_or_none()
    if row is None or row.station_id != station.id:
        raise Refusal("admin_required", "Admin badge and PIN needed for this.", 403)
    if (audit.micros(row.expires_at) or 0) < (audit.micros(now) or 0):
        raise Refusal("admin_session_expired", "The admin session expired; badge in again.", 403)
    user = conn.execute(select(t.users).where(t.users.c.id == row.user_id)).one()
    admin = views.person_from_row(user)
    # The same table keeps supervisors' board sessions (kiosk.server.board): they open no more.
    rules.require_role(admin, rules.ADMIN_ROLES, "open the admin console")
    return admin


# --- overview -------------------------------------------------------------------------------------


def overview(conn: Connection, now: datetime) -> PlantOverview:
    return PlantOverview(
        server_version=__version__,
        stations=tuple(_stations(conn, now)),
        holds=tuple(_holds(conn)),
        open_ncrs=tuple(_open_ncrs(conn)),
        locked_people=tuple(
            views.person_from_row(r)
            for r in conn.execute(select(t.users).where(t.users.c.locked.is_(True)))
        ),
        enrollment_codes=tuple(_codes(conn)),
        security=tuple(_security(conn)),
        andon=andon.open_requests(conn, views.NameLookup(conn)),
    )


def _security(conn: Connection, limit: int = 50) -> list[SecurityEvent]:
    names = {r.id: r.name for r in conn.execute(select(t.stations.c.id, t.stations.c.name))}
    rows = conn.execute(
        select(t.security_events).order_by(t.security_events.c.id.desc()).limit(limit)
    )
    return [
        SecurityEvent(at=r.at, station=names.get(r.station_id), kind=r.kind, detail=r.detail)
        for r in rows
    ]


def _stations(conn: Connection, now: datetime) -> list[StationStatus]:
    beats = {r.station_id: r for r in conn.execute(select(t.heartbeats))}
    rows = conn.execute(select(t.stations).order_by(t.stations.c.name)).all()
    plant_lock = reference_lock(lock_hash(), (r.lock_hash for r in rows if r.id in beats))
    found = []
    for row in rows:
        config = StationConfig.model_validate_json(row.config)
        beat_row = beats.get(row.id)
        beat = Heartbeat.model_validate_json(beat_row.body) if beat_row else None
        seen = beat_row.received_at if beat_row else None
        silent = (
            seen is None
            or (audit.micros(now) or 0) - (audit.micros(seen) or 0)
            > SILENT_AFTER.total_seconds() * 1e6
        )
        found.append(
            StationStatus(
                name=row.name,
                work_center=row.work_center,
                enrolled=row.token_sha256 is not None and not row.revoked,
                config_version=row.config_version,
                theme=config.theme,
                last_seen=seen,
                heartbeat=beat,
                drift=drift(beat, row.config_version, config.theme, row.lock_hash, plant_lock),
                silent=silent,
                other_lock=beat is not None and lock_drift(row.lock_hash, plant_lock) is not None,
            )
        )
    return found


def reference_lock(own: str | None, reported: Iterable[str | None]) -> tuple[str, str] | None:
    """The lock every station should run, and whose it is: the server's own, or (a server run
    without its lock file) the one most stations report, if more than half of them agree."""
    if own is not None:
        return own, "plant"
    counts = Counter(h for h in reported if h is not None)
    if not counts:
        return None
    top, n = counts.most_common(1)[0]
    return (top, "most stations") if n * 2 > counts.total() else None


def drift(
    beat: Heartbeat | None,
    config_version: int,
    theme: str,
    lock: str | None = None,
    plant_lock: tuple[str, str] | None = None,
) -> tuple[str, ...]:
    """How a station differs from what the plant says it should run. A station that reports no
    lock (a release before locks) is not compared: its app version already differs."""
    if beat is None:
        return ()
    found = []
    if beat.app_version != __version__:
        found.append(f"app {beat.app_version} (plant {__version__})")
    if beat.config_version != config_version:
        found.append(f"config v{beat.config_version} (plant v{config_version})")
    if beat.theme != theme:
        found.append(f"theme {beat.theme} (plant {theme})")
    if (line := lock_drift(lock, plant_lock)) is not None:
        found.append(line)
    return tuple(found)


def lock_drift(lock: str | None, plant_lock: tuple[str, str] | None) -> str | None:
    """The drift line (lock, then whose lock it should be) when a station runs another lock."""
    if lock is None or plant_lock is None or lock == plant_lock[0]:
        return None
    # 12 hex digits tell locks apart at a glance; the full hash is in the heartbeat.
    return f"lock {lock[:12]} ({plant_lock[1]} {plant_lock[0][:12]})"


def held_travelers(conn: Connection) -> list[HeldTraveler]:
    return _holds(conn)


def _holds(conn: Connection) -> list[HeldTraveler]:
    rows = conn.execute(
        select(
            t.holds,
            t.travelers.c.number,
            t.users.c.name.label("placer"),
            t.ncrs.c.number.label("ncr"),
            t.andon_requests.c.id.label("stop_request"),  # a stop places one hold, at most
        )
        .join(t.travelers, t.travelers.c.id == t.holds.c.traveler_id)
        .join(t.users, t.users.c.id == t.holds.c.placed_by)
        .outerjoin(t.ncrs, t.ncrs.c.id == t.holds.c.ncr_id)
        .outerjoin(t.andon_requests, t.andon_requests.c.hold_id == t.holds.c.id)
        .where(t.holds.c.released_signature_id.is_(None))
        .order_by(t.holds.c.id)
    )
    return [
        HeldTraveler(
            traveler=r.number,
            reason=r.reason,
            placed_by=r.placer,
            placed_at=r.placed_at,
            ncr_number=r.ncr,
            stop=r.stop_request is not None,
        )
        for r in rows
    ]


def _open_ncrs(conn: Connection) -> list[OpenNcr]:
    numbers = conn.execute(
        select(t.travelers.c.number)
        .join(t.ncrs, t.ncrs.c.traveler_id == t.travelers.c.id)
        .where(t.ncrs.c.disposition.is_(None))
        .distinct()
    ).scalars()
    found = []
    for number in numbers:
        trav = views.load_traveler(conn, number)
        found += [OpenNcr(traveler=number, ncr=n) for n in trav.ncrs if n.status == "open"]
    return found


def _codes(conn: Connection) -> list[EnrollmentCode]:
    rows = conn.execute(
        select(t.enrollment_codes, t.stations.c.name)
        .join(t.stations, t.stations.c.id == t.enrollment_codes.c.station_id)
        .order_by(t.enrollment_codes.c.expires_at.desc())
    )
    return [
        EnrollmentCode(station=r.name, expires_at=r.expires_at, used=r.used_at is not None)
        for r in rows
    ]


# --- central config -----------------------------------------------------------------------------


def set_config(
    conn: Connection, name: str, config: StationConfig, admin: Person, station: StationRef
) -> int:
    """Replace a station's config; its version goes up, and the station picks it up on its next beat."""
    rules.ensure_scanner_usable(config.scanner)
    row: Any = conn.execute(select(t.stations).where(t.stations.c.name == name)).one_or_none()
    if row is None:
        raise views.NotFound(f"Station {name}")
    version = int(row.config_version) + 1
    conn.execute(
        update(t.stations)
        .where(t.stations.c.id == row.id)
        .values(config=config.model_dump_json(), config_version=version)
    )
    audit.append(
        conn,
        action="station_config",
        entity=f"station:{name}",
        actor=admin.name,
        station=station.name,
        old=StationConfig.model_validate_json(row.config).model_dump(mode="json"),
        new=config.model_dump(mode="json"),
    )
    return version
