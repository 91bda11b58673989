"""The live board: the whole floor in a handful of set-based queries, for supervisors and quality.

Who is signed in where, who is clocked on which step, holds, open NCRs, refused actions, help and
stop requests. A board session is opened with badge + PIN by a supervisor, quality or an admin
(rules.BOARD_ROLES); answering a request from the board is an action like any other, applied by
the domain with the session's person as the actor.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import andon, audit, domain, fleet, quality, views
from kiosk.server import schema as t
from kiosk.server.security import token_digest
from kiosk.wire import (
    ActionApplied,
    AdminSession,
    AndonAnswer,
    Board,
    BoardNcr,
    BoardStation,
    BoardWork,
    Heartbeat,
    Person,
)

LONGEST_WAIT = 25.0
"""Seconds a long poll is held open at most: under the usual 30 s proxy and client timeouts."""
POLL_EVERY = 0.5
"""Seconds between looks while a long poll waits: a change reaches the board within this."""


def open_session(
    conn: Connection, station: domain.StationRef, person: Person, now: datetime
) -> AdminSession:
    """A board session, kept with admin sessions: every admin route also checks the admin role
    (fleet.session_admin), so a supervisor's board session opens nothing else."""
    rules.require_role(person, rules.BOARD_ROLES, "watch the board")
    token = secrets.token_urlsafe(32)
    expires = now + fleet.ADMIN_SESSION
    values = {"token_sha256": token_digest(token), "user_id": person.id, "station_id": station.id}
    conn.execute(insert(t.admin_sessions).values(**values, expires_at=expires))
    audit.append(
        conn, action="board_session", entity=f"user:{person.id}", actor=person.name,
        station=station.name, now=now,
    )  # fmt: skip
    return AdminSession(admin=person, token=token, expires_at=expires)


def viewer(
    conn: Connection, station: domain.StationRef, token: str | None, now: datetime
) -> Person:
    """The person whose live board session this is, or a refusal."""
    row = None
    if token:
        query = select(t.admin_sessions).where(
            t.admin_sessions.c.token_sha256 == token_digest(token)
        )
        row = conn.execute(query).one_or_none()
    if row is None or row.station_id != station.id:
        raise Refusal("board_session_required", "Badge and PIN needed to watch the board.", 403)
    if (audit.micros(row.expires_at) or 0) < (audit.micros(now) or 0):
        raise Refusal("board_session_expired", "The board session expired; badge in again.", 403)
    person = views.person_from_row(
        conn.execute(select(t.users).where(t.users.c.id == row.user_id)).one()
    )
    rules.require_role(person, rules.BOARD_ROLES, "watch the board")
    return person


def answer(
    conn: Connection, station: domain.StationRef, person: Person, action: AndonAnswer, now: datetime
) -> ActionApplied:
    """Acknowledge or resolve a request as the board's person (the action names them)."""
    if action.actor_id != person.id:
        raise Refusal("actor_mismatch", "The board answers only in its own person's name.", 403)
    change = domain.Change(conn, station, person, None, now, None, False)
    applied = domain.apply(change, action, with_traveler=False)
    return ActionApplied(applied=applied.applied, message=applied.message)


# --- the board --------------------------------------------------------------------------------------


def read(conn: Connection, now: datetime) -> Board:
    names = views.NameLookup(conn)
    content: dict[str, Any] = {
        "stations": tuple(_stations(conn, now)),
        "work": tuple(_work(conn, names)),
        "holds": tuple(fleet.held_travelers(conn)),  # as the admin console lists them
        "open_ncrs": tuple(_open_ncrs(conn)),
        "andon": andon.open_requests(conn, names),
        "certifications": tuple(_expiring_certifications(conn, now)),
    }
    # The version is what a board shows, apart from the moment it was read: same floor, same version.
    digest = hashlib.sha256()
    for part in content.values():
        for entry in part:
            digest.update(
                entry.encode() if isinstance(entry, str) else entry.model_dump_json().encode()
            )
        digest.update(b"|")
    return Board(version=digest.hexdigest()[:16], generated_at=now, **content)


def _expiring_certifications(conn: Connection, now: datetime) -> list[str]:
    """As `kiosk certifications` lists them: expired or expiring soon, soonest first."""
    today = now.date()
    return [
        f"{e.person} · {e.operation} · "
        + (
            f"EXPIRED {e.expires}"
            if e.expired
            else f"expires {e.expires} ({_in_days(e.expires, today)})"
        )
        for e in quality.expiring(conn, today, quality.EXPIRING_WITHIN_DAYS)
    ]


def _in_days(expires: date, today: date) -> str:
    days = (expires - today).days
    return "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"


def _stations(conn: Connection, now: datetime) -> list[BoardStation]:
    signed_in = {
        r.station_id: r
        for r in conn.execute(
            select(t.person_sessions.c.station_id, t.person_sessions.c.issued_at, t.users.c.name)
            .join(t.users, t.users.c.id == t.person_sessions.c.user_id)
            .where(t.person_sessions.c.ended_at.is_(None), t.person_sessions.c.expires_at > now)
            .order_by(t.person_sessions.c.issued_at)
        )
    }
    beats = {r.station_id: r for r in conn.execute(select(t.heartbeats))}
    found = []
    for st in conn.execute(
        select(t.stations).where(t.stations.c.revoked.is_(False)).order_by(t.stations.c.name)
    ):
        session, beat = signed_in.get(st.id), beats.get(st.id)
        refused: tuple[str, ...] = ()
        if beat is not None:
            refused = Heartbeat.model_validate_json(beat.body).refused_actions
        found.append(
            BoardStation(
                name=st.name,
                work_center=st.work_center,
                person=None if session is None else session.name,
                signed_in_at=None if session is None else session.issued_at,
                silent=beat is None or beat.received_at < now - fleet.SILENT_AFTER,
                refused=refused,
            )
        )
    return found


def _work(conn: Connection, names: views.NameLookup) -> list[BoardWork]:
    L = t.labour_intervals.c
    rows = conn.execute(
        select(
            L.user_id,
            L.station_id,
            L.started_at,
            t.travelers.c.number.label("traveler"),
            t.steps.c.number.label("step"),
            t.stations.c.work_center,
        )  # fmt: skip
        .join(t.travelers, t.travelers.c.id == L.traveler_id)
        .join(t.steps, t.steps.c.id == L.step_id)
        .join(t.stations, t.stations.c.id == L.station_id)
        .where(L.ended_at.is_(None))
        .order_by(t.stations.c.work_center, L.started_at)
    )
    return [
        BoardWork(
            station=names.station(r.station_id),
            work_center=r.work_center,
            person=names.user(r.user_id),
            traveler=r.traveler,
            step=r.step,
            since=r.started_at,
        )
        for r in rows
    ]


def _open_ncrs(conn: Connection) -> list[BoardNcr]:
    rows = conn.execute(
        select(t.ncrs, t.travelers.c.number.label("traveler"), t.steps.c.number.label("step"))
        .join(t.travelers, t.travelers.c.id == t.ncrs.c.traveler_id)
        .outerjoin(t.steps, t.steps.c.id == t.ncrs.c.step_id)
        .where(t.ncrs.c.disposition.is_(None))
        .order_by(t.ncrs.c.raised_at)
    )
    return [
        BoardNcr(
            traveler=r.traveler,
            number=r.number,
            step=r.step,
            description=r.description,
            raised_at=r.raised_at,
        )
        for r in rows
    ]


def wait_step(waited: float, wait: float) -> float | None:
    """How long to sleep before the next look, or None when the long poll has waited enough."""
    left = min(wait, LONGEST_WAIT) - waited
    return None if left <= 0 else min(POLL_EVERY, left)
