"""Identifying people: badge-in and person sessions, badge + PIN checks with lock-out, signing
tickets, the unknown-badge rate limit, and the offline credential cache with the proofs it allows.

Nothing a station merely claims names a person: an action's actor stands on a person session
(issued here at an online badge-in at that station) or on an offline proof made with a key that
only the person's badge unwraps; a signature on badge + PIN checked here, a ticket from such a
check, or an offline proof made with a key that only badge + PIN unwrap.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kiosk import rules
from kiosk.identity import Purpose, action_mac, badge_key, cache_context, pin_key, wrap
from kiosk.rules import Refusal
from kiosk.server import audit, labour, views
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.security import CACHE_KDF, PlantSecret, hash_pin, pin_matches, token_digest
from kiosk.server.store import scratch
from kiosk.wire import (
    Action,
    CachedPerson,
    CredentialCache,
    OfflineProof,
    Person,
    SignedIn,
    StationConfig,
)

MAX_PIN_FAILURES = 5
SESSION_LIFETIME = timedelta(
    hours=12
)  # a shift; sign-out, the idle lock or a new badge end it sooner
# Unknown badges a station may present in the window before every badge-in there pauses: a person
# mistyping now and then never meets it; a script walking the badge space is slowed to a crawl.
UNKNOWN_BADGE_LIMIT = 10
UNKNOWN_BADGE_WINDOW = timedelta(minutes=10)
# Station clocks drift; `kiosk doctor` flags more than a minute. Offline proofs get this much
# slack against the server's clock before their timing counts as outside the window.
CLOCK_SKEW = timedelta(minutes=5)

# The one answer to a badge + PIN that does not identify anyone, whether the badge is unknown or
# the PIN wrong: whoever typed it learns nothing about the badge, or whose it is.
NOT_ACCEPTED = "Badge or PIN not accepted. Repeated wrong PINs lock the badge."


def not_accepted() -> Refusal:
    return Refusal("credentials_not_accepted", NOT_ACCEPTED, 403)


def locked_refusal() -> Refusal:
    return Refusal(
        "person_locked",
        "This badge is locked after repeated wrong PINs; a supervisor must unlock it.",
        403,
    )


def security_event(
    conn: Connection, station: StationRef | None, kind: str, detail: str, now: datetime
) -> None:
    conn.execute(
        insert(t.security_events).values(
            at=now, station_id=None if station is None else station.id, kind=kind, detail=detail
        )
    )


# --- finding a badge, with the rate limit ------------------------------------------------------------


def _misses_since(conn: Connection, station: StationRef, since: datetime) -> list[datetime]:
    return list(
        conn.execute(
            select(t.badge_misses.c.at)
            .where(t.badge_misses.c.station_id == station.id, t.badge_misses.c.at > since)
            .order_by(t.badge_misses.c.at)
        ).scalars()
    )


def ensure_not_rate_limited(conn: Connection, station: StationRef, now: datetime) -> None:
    """While a station is over its unknown-badge limit, no badge is looked up there at all: a
    known badge answering differently would still tell the badge space apart."""
    misses = _misses_since(conn, station, now - UNKNOWN_BADGE_WINDOW)
    if len(misses) < UNKNOWN_BADGE_LIMIT:
        return
    wait = misses[0] + UNKNOWN_BADGE_WINDOW - now
    minutes = max(1, int(wait.total_seconds() // 60) + 1)
    raise Refusal(
        "badge_rate_limited",
        f"Too many unknown badges at this station: badge-in is paused for {minutes} min. "
        "If that was not you, tell a supervisor.",
        429,
        retry_after=max(1, int(wait.total_seconds()) + 1),
    )


def _note_miss(conn: Connection, station: StationRef, now: datetime) -> None:
    conn.execute(
        delete(t.badge_misses).where(
            t.badge_misses.c.station_id == station.id,
            t.badge_misses.c.at <= now - UNKNOWN_BADGE_WINDOW,
        )
    )
    conn.execute(insert(t.badge_misses).values(station_id=station.id, at=now))
    if len(_misses_since(conn, station, now - UNKNOWN_BADGE_WINDOW)) == UNKNOWN_BADGE_LIMIT:
        security_event(
            conn,
            station,
            "unknown_badges",
            f"{UNKNOWN_BADGE_LIMIT} unknown badges within {UNKNOWN_BADGE_WINDOW.seconds // 60} "
            "min: badge-in paused there",
            now,
        )


def badge_row(
    conn: Connection,
    secret: PlantSecret,
    station: StationRef,
    badge: str,
    now: datetime,
    *,
    unknown: Refusal,
    for_update: bool = False,
) -> Any:
    """The person holding `badge`; an unknown one is counted against the station, then refused."""
    ensure_not_rate_limited(conn, station, now)
    query = select(t.users).where(t.users.c.badge_hmac == secret.badge_hash(badge))
    if for_update:
        # PIN checks count failures: two at the same instant must count one after the other.
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None or not row.active:
        _note_miss(conn, station, now)
        raise unknown
    return row


def badge_unknown() -> Refusal:
    return Refusal("badge_unknown", "Badge not recognised. Ask a supervisor to register it.", 403)


# --- badge-in and person sessions -----------------------------------------------------------------


def badge_in(
    conn: Connection, secret: PlantSecret, station: StationRef, badge: str, now: datetime
) -> SignedIn | Refusal:
    """An online badge-in: ends whoever's session was open at this station and opens one.

    An unknown badge is returned as a refusal for the caller to commit (it counts against the
    station's rate limit) and then raise.
    """
    try:
        row = badge_row(conn, secret, station, badge, now, unknown=badge_unknown())
    except Refusal as refusal:
        if refusal.rule == "badge_unknown":
            return refusal
        raise
    if row.locked:
        raise Refusal("person_locked", f"{row.name} is locked; a supervisor must unlock.", 403)
    person = views.person_of(conn, row)
    rules.ensure_qualified(person, station.work_center)
    end_sessions(conn, station, now, "new_badge")
    token, expires = _issue(conn, t.person_sessions, row.id, station, now, SESSION_LIFETIME)
    audit.append(
        conn, action="badge_in", entity=f"user:{row.id}", actor=row.name, station=station.name
    )
    remember_badge(conn, secret, station, row, badge)
    return SignedIn(person=person, session=token, expires_at=expires)


def end_sessions(
    conn: Connection, station: StationRef, now: datetime, reason: str, token: str | None = None
) -> int:
    """End the open sessions at `station` (only `token`'s, when given); how many were open.
    Whoever signs out or idles out is clocked off their steps there, with that reason."""
    where = [t.person_sessions.c.station_id == station.id, t.person_sessions.c.ended_at.is_(None)]
    if token is not None:
        where.append(t.person_sessions.c.token_sha256 == token_digest(token))
    if reason in labour.SESSION_ENDS_CLOCKING_OFF:
        ending = conn.execute(select(t.person_sessions.c.user_id).where(*where)).scalars().all()
        labour.clock_off_people(conn, set(ending), station, reason, now)
    return int(
        conn.execute(
            update(t.person_sessions).where(*where).values(ended_at=now, end_reason=reason)
        ).rowcount
    )


# Sessions, their people and their certifications in one read (a row for each certification):
# every action a station sends names its session, and its rules need the certifications.
_SESSIONS_PEOPLE = (
    select(
        t.person_sessions.c.token_sha256,
        t.person_sessions.c.station_id,
        t.person_sessions.c.user_id,
        t.person_sessions.c.expires_at,
        t.person_sessions.c.ended_at,
        t.users,
        t.certifications.c.operation.label("cert_operation"),
        t.certifications.c.expires.label("cert_expires"),
    )
    .join(t.users, t.users.c.id == t.person_sessions.c.user_id)
    .outerjoin(t.certifications, t.certifications.c.user_id == t.users.c.id)
    .where(t.person_sessions.c.token_sha256.in_(bindparam("digests", expanding=True)))
    .order_by(t.certifications.c.operation)
)
_AHEAD = "session_rows"
"""Where a transaction keeps the sessions read ahead for its deliveries."""


def sessions_rows(conn: Connection, digests: list[str]) -> dict[str, list[Any]]:
    """Each session token digest's rows: its person once for each certification (once if none);
    no rows, no such session."""
    found: dict[str, list[Any]] = {digest: [] for digest in digests}
    for row in conn.execute(_SESSIONS_PEOPLE, {"digests": digests}):
        found[row.token_sha256].append(row)
    return found


def read_ahead(conn: Connection, digests: list[str]) -> None:
    """Read the sessions of these token digests for the group's deliveries
    (kiosk.server.read_ahead), and keep them in the transaction for `_session_person`."""
    scratch(conn)[_AHEAD] = sessions_rows(conn, digests)


def _session_person(
    conn: Connection, station: StationRef, token: str, actor_id: int, now: datetime
) -> Person | Refusal:
    digest = token_digest(token)
    ahead: dict[str, list[Any]] = scratch(conn).get(_AHEAD, {})
    rows = ahead[digest] if digest in ahead else sessions_rows(conn, [digest])[digest]
    row = rows[0] if rows else None
    if row is None or row.station_id != station.id or row.user_id != actor_id:
        return Refusal(
            "session_invalid",
            "This action's person session is not one this station was given for that person.",
            403,
        )
    if row.ended_at is not None or audit.micros(row.expires_at) <= audit.micros(now):  # type: ignore[operator]
        return Refusal(
            "session_ended",
            "The person who recorded this was signed out at this station before it reached the "
            "server; sign in and do it again.",
            403,
        )
    certs = [(r.cert_operation, r.cert_expires) for r in rows if r.cert_operation is not None]
    return _active(conn, row, row.user_id, certs)


def prove_actor(
    conn: Connection, secret: PlantSecret, station: StationRef, action: Action, now: datetime
) -> tuple[Person, bool]:
    """The actor of `action`, from proof this server can check; and whether it was offline proof.

    A live session is proof; where it is not (the station was offline, or the session ended
    before a queued action arrived) the badge-made proof is.
    """
    refusal: Refusal | None = None
    if action.session is not None:
        # A batch from one station names the same session action after action: checked once.
        checked = scratch(conn).setdefault("sessions", {})
        key = (station.id, action.session, action.actor_id)
        found = checked.get(key) or _session_person(
            conn, station, action.session, action.actor_id, now
        )
        if isinstance(found, Person):
            checked[key] = found
            return found, False
        refusal = found
    if action.actor_proof is not None:
        proof = action.actor_proof
        return verify_offline(
            conn, secret, station, action.actor_id, "act", proof, action, now
        ), True
    raise refusal or Refusal(
        "actor_unproven",
        "This action names a person, but nothing proves they are signed in at this station.",
        403,
    )


def active_person(conn: Connection, user_id: int) -> Person:
    row = conn.execute(select(t.users).where(t.users.c.id == user_id)).one_or_none()
    return _active(conn, row, user_id)


def _active(
    conn: Connection, row: Any, user_id: int, certs: list[tuple[str, date]] | None = None
) -> Person:
    if row is None or not row.active:
        raise Refusal("person_unknown", f"No active person with id {user_id}.", 403)
    if row.locked:
        raise Refusal("person_locked", f"{row.name} is locked; a supervisor must unlock.", 403)
    return views.person_of(conn, row, certs)


# --- badge + PIN -------------------------------------------------------------------------------------


def check_credentials(
    conn: Connection, secret: PlantSecret, station: StationRef, badge: str, pin: str, now: datetime
) -> Person | Refusal:
    """Badge + PIN. A refusal is returned, not raised: the caller commits the failure count."""
    try:
        row = badge_row(conn, secret, station, badge, now, unknown=not_accepted(), for_update=True)
    except Refusal as unknown:
        return unknown
    if row.locked:
        return locked_refusal()
    wrong = check_pin(conn, station, row, pin, now)
    if wrong is not None:
        return wrong
    remember_pin(conn, secret, row, badge, pin)
    remember_badge(conn, secret, station, row, badge)
    return views.person_of(conn, row)


def check_pin(
    conn: Connection, station: StationRef, row: Any, pin: str, now: datetime
) -> Refusal | None:
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
    if not locked:
        return not_accepted()
    audit.append(
        conn,
        action="lock_user",
        entity=entity,
        actor=None,
        station=station.name,
        old=False,
        new=True,
    )
    security_event(conn, station, "person_locked", f"{row.name}: {failures} wrong PINs", now)
    return locked_refusal()


# --- signing tickets ----------------------------------------------------------------------------


def _issue(
    conn: Connection,
    table: Table,
    user_id: int,
    station: StationRef,
    now: datetime,
    life: timedelta,
) -> tuple[str, datetime]:
    """A new secret for one person at one station (a session, a ticket): only its hash is kept."""
    secret = secrets.token_urlsafe(32)
    expires = now + life
    conn.execute(
        insert(table).values(
            token_sha256=token_digest(secret),
            user_id=user_id,
            station_id=station.id,
            issued_at=now,
            expires_at=expires,
        )
    )
    return secret, expires


def issue_ticket(
    conn: Connection, station: StationRef, person: Person, now: datetime, hours: float
) -> tuple[str, datetime]:
    return _issue(conn, t.tickets, person.id, station, now, timedelta(hours=hours))


def redeem_ticket(conn: Connection, station: StationRef, ticket: str, now: datetime) -> Person:
    """A signing ticket is good once, at the station it was issued to, until it expires."""
    row = conn.execute(
        select(t.tickets).where(t.tickets.c.token_sha256 == token_digest(ticket)).with_for_update()
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
        update(t.tickets).where(t.tickets.c.token_sha256 == row.token_sha256).values(used_at=now)
    )
    return active_person(conn, row.user_id)


# --- keys for the offline credential cache ------------------------------------------------------


def _key_context(station_id: int, user_id: int, purpose: Purpose) -> str:
    return f"kiosk-key:{station_id}:{user_id}:{purpose}"


def _pin_key_context(row: Any) -> str:
    return f"kiosk-pin-key:{row.badge_hmac}"


def new_person(
    secret: PlantSecret, name: str, badge: str, pin: str, roles: str, work_centers: str
) -> dict[str, Any]:
    """A users row for a person given their badge and PIN, keeping neither: the badge as its HMAC,
    the PIN as its argon2 hash, and the sealed key their offline signing keys are wrapped under."""
    badge_hmac = secret.badge_hash(badge)
    return {
        "name": name,
        "roles": roles,
        "work_centers": work_centers,
        "badge_hmac": badge_hmac,
        "pin_hash": hash_pin(pin),
        "failed_pins": 0,
        "locked": False,
        "active": True,
        **person_secrets(secret, badge_hmac, badge, pin),
    }


def person_secrets(secret: PlantSecret, badge_hmac: str, badge: str, pin: str) -> dict[str, str]:
    """What the server keeps of a new person's badge + PIN beside the argon2 PIN hash: the key
    their signing keys are wrapped under, sealed under the plant secret."""
    salt = os.urandom(16)
    sealed = secret.seal(pin_key(badge, pin, salt, CACHE_KDF), f"kiosk-pin-key:{badge_hmac}")
    return {"pin_salt": salt.hex(), "pin_key_sealed": sealed}


def remember_pin(conn: Connection, secret: PlantSecret, row: Any, badge: str, pin: str) -> None:
    """Badge + PIN just checked: if the sealed PIN key is missing, make it now, and wrap this
    person's signing keys for every station they are known at."""
    if row.pin_key_sealed is not None:
        return
    made = person_secrets(secret, row.badge_hmac, badge, pin)
    conn.execute(update(t.users).where(t.users.c.id == row.id).values(**made))
    stations = conn.execute(
        select(t.station_verifiers).where(t.station_verifiers.c.user_id == row.id)
    ).all()
    the_key = secret.unseal(made["pin_key_sealed"], _pin_key_context(row))
    for entry in stations:
        signing = secret.unseal(
            entry.signing_key_sealed, _key_context(entry.station_id, row.id, "sign")
        )
        conn.execute(
            update(t.station_verifiers)
            .where(
                t.station_verifiers.c.station_id == entry.station_id,
                t.station_verifiers.c.user_id == row.id,
            )
            .values(
                signing_key_wrapped=wrap(
                    the_key, signing, cache_context(entry.station_id, row.id, "sign")
                )
            )
        )


def remember_badge(
    conn: Connection, secret: PlantSecret, station: StationRef, row: Any, badge: str
) -> None:
    """The badge was just seen at `station`: give the person an entry in its offline cache, with
    their own keys for this station. Made once (it costs an argon2 of the badge)."""
    existing = conn.execute(
        select(t.station_verifiers.c.user_id).where(
            t.station_verifiers.c.station_id == station.id,
            t.station_verifiers.c.user_id == row.id,
        )
    ).first()
    if existing is not None:
        return
    salt = conn.execute(
        select(t.stations.c.badge_salt).where(t.stations.c.id == station.id)
    ).scalar_one()
    found = badge_key(badge, bytes.fromhex(salt), CACHE_KDF)
    actor, signing = os.urandom(32), os.urandom(32)
    signing_wrapped = None
    if row.pin_key_sealed is not None:
        the_pin_key = secret.unseal(row.pin_key_sealed, _pin_key_context(row))
        signing_wrapped = wrap(the_pin_key, signing, cache_context(station.id, row.id, "sign"))
    entry = {
        "station_id": station.id,
        "user_id": row.id,
        "verifier": found.verifier,
        "actor_key_sealed": secret.seal(actor, _key_context(station.id, row.id, "act")),
        "actor_key_wrapped": wrap(found.wrapping, actor, cache_context(station.id, row.id, "act")),
        "signing_key_sealed": secret.seal(signing, _key_context(station.id, row.id, "sign")),
        "signing_key_wrapped": signing_wrapped,
    }
    # Two badge-ins of one person at one station at the same moment (two server processes) must
    # not both insert: a unique violation would abort the whole PostgreSQL transaction.
    keys = ["station_id", "user_id"]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(t.station_verifiers)
        .values(**entry)
        .on_conflict_do_nothing(index_elements=keys)
    )


# --- the offline credential cache, and the proofs made with it -------------------------------------


def station_config(conn: Connection, station: StationRef) -> StationConfig:
    raw = conn.execute(
        select(t.stations.c.config).where(t.stations.c.id == station.id)
    ).scalar_one()
    return StationConfig.model_validate_json(raw)


def credential_cache(conn: Connection, station: StationRef, now: datetime) -> CredentialCache:
    """The entries of the people known at this station, made for this station only."""
    rows = conn.execute(
        select(t.users, t.station_verifiers)
        .join(t.station_verifiers, t.station_verifiers.c.user_id == t.users.c.id)
        .where(t.station_verifiers.c.station_id == station.id, t.users.c.active.is_(True))
        .order_by(t.users.c.id)
    ).all()
    people = [
        CachedPerson(
            person=person,
            badge_verifier=row.verifier,
            actor_key=row.actor_key_wrapped,
            signing_key=row.signing_key_wrapped,
            pin_salt=row.pin_salt,
            locked=row.locked,
        )
        for row in rows
        if rules.qualified(person := views.person_of(conn, row), station.work_center)
    ]
    window = station_config(conn, station).offline_window_hours
    members = json.dumps([p.person.id for p in people])
    cache_id = conn.execute(
        insert(t.cache_issues)
        .values(station_id=station.id, issued_at=now, window_hours=window, members=members)
        .returning(t.cache_issues.c.id)
    ).scalar_one()
    salt = conn.execute(
        select(t.stations.c.badge_salt).where(t.stations.c.id == station.id)
    ).scalar_one()
    audit.append(
        conn,
        action="issue_credential_cache",
        entity=f"station:{station.name}",
        actor=None,
        station=station.name,
        new={"cache": cache_id, "people": len(people)},
    )
    return CredentialCache(
        id=cache_id,
        station_id=station.id,
        issued_at=now,
        window_hours=window,
        badge_salt=salt,
        kdf=CACHE_KDF,
        people=tuple(people),
    )


def _refuse_proof(detail: str, rule: str = "proof_invalid") -> Refusal:
    return Refusal(rule, detail, 403)


def verify_offline(
    conn: Connection,
    secret: PlantSecret,
    station: StationRef,
    user_id: int,
    purpose: Purpose,
    proof: OfflineProof,
    action: Action,
    now: datetime,
) -> Person:
    """An offline proof stands if it names a cache this station was given, with the person in it,
    made within that cache's window, with the MAC only their badge (and PIN) could make, once."""
    cache = conn.execute(
        select(t.cache_issues).where(t.cache_issues.c.id == proof.cache_id)
    ).one_or_none()
    if cache is None or cache.station_id != station.id:
        raise _refuse_proof(
            "This offline proof was not made with a credential cache of this station."
        )
    if user_id not in json.loads(cache.members):
        raise _refuse_proof(
            "The person named was not in this station's offline credential cache: only people "
            "who signed in here online can be identified here offline.",
            "not_in_cache",
        )
    _ensure_in_window(cache, action.station_time, now)
    entry = conn.execute(
        select(t.station_verifiers).where(
            t.station_verifiers.c.station_id == station.id,
            t.station_verifiers.c.user_id == user_id,
        )
    ).one_or_none()
    if entry is None:
        raise _refuse_proof(
            "This person's offline keys for this station were withdrawn.", "not_in_cache"
        )
    sealed = entry.actor_key_sealed if purpose == "act" else entry.signing_key_sealed
    key = secret.unseal(sealed, _key_context(station.id, user_id, purpose))
    expected = action_mac(key, purpose, station.id, proof.nonce, action)
    if not secrets.compare_digest(expected, proof.mac):
        made_with = "badge" if purpose == "act" else "badge and PIN"
        raise _refuse_proof(
            f"The offline proof does not match this action: it was not made with this person's {made_with}."
        )
    _use_nonce(conn, station, proof.nonce)
    person = active_person(conn, user_id)
    if purpose == "sign":
        security_event(
            conn,
            station,
            "offline_signature",
            f"{person.name} signed {action.kind.replace('_', ' ')} on {action.traveler} offline",
            now,
        )
    return person


def _ensure_in_window(cache: Any, when: datetime | None, now: datetime) -> None:
    if when is None:
        raise _refuse_proof("An offline proof needs the station's time of the action.")
    start = cache.issued_at - CLOCK_SKEW
    end = cache.issued_at + timedelta(hours=cache.window_hours) + CLOCK_SKEW
    moment = audit.micros(when)
    assert moment is not None
    in_window = audit.micros(start) <= moment <= audit.micros(end)  # type: ignore[operator]
    if not in_window or moment > (audit.micros(now + CLOCK_SKEW) or 0):
        raise Refusal(
            "offline_window_expired",
            "This was recorded offline outside the station's credential window; "
            "a supervisor must re-do it.",
        )


def _use_nonce(conn: Connection, station: StationRef, nonce: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    fresh = conn.execute(
        dialect.insert(t.proof_nonces)
        .values(station_id=station.id, nonce=nonce)
        .on_conflict_do_nothing(index_elements=["station_id", "nonce"])
        .returning(t.proof_nonces.c.nonce)
    ).first()
    if fresh is None:
        raise _refuse_proof(
            "This offline proof was already used: each is good for one action.", "proof_replayed"
        )
