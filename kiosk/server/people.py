"""Identifying people: badge-in, badge + PIN checks with lock-out, signing tickets, and the
offline credential cache with the station attestations it makes possible.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kiosk.identity import badge_verifier
from kiosk.rules import Refusal
from kiosk.server import audit, views
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.security import PlantSecret, pin_matches, token_digest
from kiosk.wire import (
    CachedPerson,
    CredentialCache,
    Person,
    StationAttestation,
    StationConfig,
)

MAX_PIN_FAILURES = 5
# Station clocks drift; `kiosk doctor` flags more than a minute. Offline signatures get this much
# slack against the server's clock before their timing counts as outside the window.
CLOCK_SKEW_MICROS = 5 * 60 * 1_000_000


def locked_refusal(name: str) -> Refusal:
    return Refusal(
        "person_locked", f"{name} is locked after wrong PINs; a supervisor must unlock.", 403
    )


def badge_row(
    conn: Connection, secret: PlantSecret, badge: str, *, for_update: bool = False
) -> Any:
    query = select(t.users).where(t.users.c.badge_hmac == secret.badge_hash(badge))
    if for_update:
        # PIN checks count failures: two at the same instant must count one after the other.
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None or not row.active:
        raise Refusal(
            "badge_unknown", "Badge not recognised. Ask a supervisor to register it.", 403
        )
    return row


def qualified(row: Any, work_center: str) -> bool:
    centers = row.work_centers.split(",")
    return "*" in centers or work_center in centers


def remember_verifier(
    conn: Connection, secret: PlantSecret, station: StationRef, user_id: int, badge: str
) -> None:
    verifier = badge_verifier(secret.station_key(station.id), badge)
    # One upsert statement: two signatures by one person at one station at the same moment (two
    # server processes, a racing retry) must not both insert. A unique violation here would abort
    # the whole PostgreSQL transaction, outside the action's savepoint.
    row = {"station_id": station.id, "user_id": user_id, "verifier": verifier}
    keys = ["station_id", "user_id"]
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(t.station_verifiers).values(**row)
        conn.execute(pg.on_conflict_do_update(index_elements=keys, set_={"verifier": verifier}))
    else:
        lite = sqlite.insert(t.station_verifiers).values(**row)
        conn.execute(lite.on_conflict_do_update(index_elements=keys, set_={"verifier": verifier}))


def ensure_qualified(conn: Connection, person: Person, station: StationRef) -> None:
    """Signing at a station needs the same qualification as badging in there."""
    row = conn.execute(select(t.users.c.work_centers).where(t.users.c.id == person.id)).one()
    if not qualified(row, station.work_center):
        raise Refusal(
            "not_qualified",
            f"{person.name} is not qualified for work center {station.work_center} and cannot sign here.",
            403,
        )


def badge_in(conn: Connection, secret: PlantSecret, station: StationRef, badge: str) -> Person:
    row = badge_row(conn, secret, badge)
    if row.locked:
        raise locked_refusal(row.name)
    if not qualified(row, station.work_center):
        raise Refusal(
            "not_qualified",
            f"{row.name} is not qualified for work center {station.work_center}.",
            403,
        )
    audit.append(
        conn, action="badge_in", entity=f"user:{row.id}", actor=row.name, station=station.name
    )
    remember_verifier(conn, secret, station, row.id, badge)
    return views.person_from_row(row)


def check_pin(conn: Connection, station: StationRef, row: Any, pin: str) -> Refusal | None:
    """Compare the PIN; count a wrong one (committed by the caller even though it refuses)."""
    if pin_matches(row.pin_hash, pin):
        if row.failed_pins:
            conn.execute(update(t.users).where(t.users.c.id == row.id).values(failed_pins=0))
        return None
    failures = row.failed_pins + 1
    locked = failures >= MAX_PIN_FAILURES
    conn.execute(
        update(t.users).where(t.users.c.id == row.id).values(failed_pins=failures, locked=locked)
    )
    entity = f"user:{row.id}"
    audit.append(
        conn,
        action="pin_wrong",
        entity=entity,
        actor=row.name,
        station=station.name,
        old=row.failed_pins,
        new=failures,
    )
    if locked:
        audit.append(
            conn,
            action="lock_user",
            entity=entity,
            actor=None,
            station=station.name,
            old=False,
            new=True,
        )
        return Refusal(
            "person_locked", f"Wrong PIN. {row.name} is now locked; a supervisor must unlock.", 403
        )
    left = MAX_PIN_FAILURES - failures
    return Refusal(
        "pin_wrong",
        f"Wrong PIN. {left} {'try' if left == 1 else 'tries'} left before lock-out.",
        403,
    )


# --- signing tickets ----------------------------------------------------------------------------


def issue_ticket(
    conn: Connection, station: StationRef, person: Person, now: datetime, hours: float
) -> tuple[str, datetime]:
    ticket = secrets.token_urlsafe(24)
    expires = now + timedelta(hours=hours)
    conn.execute(
        insert(t.tickets).values(
            ticket_sha256=token_digest(ticket),
            user_id=person.id,
            station_id=station.id,
            issued_at=now,
            expires_at=expires,
        )
    )
    return ticket, expires


def redeem_ticket(conn: Connection, station: StationRef, ticket: str, now: datetime) -> Person:
    """A signing ticket is good once, at the station it was issued to, until it expires."""
    row = conn.execute(
        select(t.tickets).where(t.tickets.c.ticket_sha256 == token_digest(ticket)).with_for_update()
    ).one_or_none()
    if row is None or row.station_id != station.id:
        raise Refusal(
            "ticket_invalid", "This signature's identity check is not valid; sign again.", 403
        )
    if row.used_at is not None:
        raise Refusal(
            "ticket_used", "This signature's identity check was already used; sign again.", 403
        )
    if audit.micros(row.expires_at) < audit.micros(now):  # type: ignore[operator]
        raise Refusal(
            "ticket_expired", "The identity check for this signature expired; sign again.", 403
        )
    conn.execute(
        update(t.tickets).where(t.tickets.c.ticket_sha256 == row.ticket_sha256).values(used_at=now)
    )
    return active_person(conn, row.user_id)


def active_person(conn: Connection, user_id: int) -> Person:
    row = conn.execute(select(t.users).where(t.users.c.id == user_id)).one_or_none()
    if row is None or not row.active:
        raise Refusal("person_unknown", f"No active person with id {user_id}.", 403)
    if row.locked:
        raise locked_refusal(row.name)
    return views.person_from_row(row)


# --- offline identity -----------------------------------------------------------------------------


def station_config(conn: Connection, station: StationRef) -> StationConfig:
    raw = conn.execute(
        select(t.stations.c.config).where(t.stations.c.id == station.id)
    ).scalar_one()
    return StationConfig.model_validate_json(raw)


def credential_cache(
    conn: Connection, secret: PlantSecret, station: StationRef, now: datetime
) -> CredentialCache:
    """Verifiers of the people known at this station, keyed for this station only."""
    key = secret.station_key(station.id)
    rows = conn.execute(
        select(t.users, t.station_verifiers.c.verifier)
        .join(t.station_verifiers, t.station_verifiers.c.user_id == t.users.c.id)
        .where(t.station_verifiers.c.station_id == station.id, t.users.c.active.is_(True))
        .order_by(t.users.c.id)
    )
    people = []
    for row in rows:
        if not qualified(row, station.work_center):
            continue
        people.append(
            CachedPerson(
                person=views.person_from_row(row),
                work_centers=tuple(row.work_centers.split(",")),
                badge_verifier=row.verifier,
                pin_hash=row.pin_hash,
                locked=row.locked,
            )
        )
    conn.execute(insert(t.cache_issues).values(station_id=station.id, issued_at=now))
    audit.append(
        conn,
        action="issue_credential_cache",
        entity=f"station:{station.name}",
        actor=None,
        station=station.name,
        new={"people": len(people)},
    )
    return CredentialCache(
        station_key=key.hex(),
        issued_at=now,
        window_hours=station_config(conn, station).offline_window_hours,
        people=tuple(people),
    )


def accept_attestation(
    conn: Connection, station: StationRef, proof: StationAttestation, offline: bool, now: datetime
) -> Person:
    """An offline signature stands if the station held a cache that was still valid when it signed."""
    if not offline:
        raise Refusal(
            "attestation_online",
            "A station may vouch for a signature only when it was offline.",
            403,
        )
    window = timedelta(hours=station_config(conn, station).offline_window_hours)
    issued = conn.execute(
        select(t.cache_issues.c.issued_at)
        .where(t.cache_issues.c.station_id == station.id)
        .order_by(t.cache_issues.c.id.desc())
    ).scalars()
    signed = audit.micros(proof.verified_at)
    assert signed is not None
    span, skew = int(window.total_seconds() * 1_000_000), CLOCK_SKEW_MICROS
    valid = any(
        (start := audit.micros(at)) is not None and start - skew <= signed <= start + span
        for at in issued
    )
    if not valid or signed > (audit.micros(now) or 0) + skew:
        raise Refusal(
            "offline_window_expired",
            "This offline signature was made outside the station's credential window; "
            "a supervisor must re-do it.",
        )
    return active_person(conn, proof.signer_id)
