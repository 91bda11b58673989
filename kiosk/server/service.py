"""The execution service: transactions, idempotency, identification and stations.

Routes and CLI commands call this class; it owns the transaction boundaries and leaves the rules
to `kiosk.rules` and the writes to `kiosk.server.domain`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, domain, views
from kiosk.server import schema as t
from kiosk.server.security import PlantSecret, new_token, pin_matches, token_digest
from kiosk.server.store import Store
from kiosk.wire import (
    Action,
    Credentials,
    Enrollment,
    Person,
    Problem,
    StationConfig,
    StationInfo,
    Traveler,
    TravelerSummary,
    UnlockUser,
    WireModel,
)

MAX_PIN_FAILURES = 5
ENROLLMENT_CODE_LIFETIME = timedelta(hours=24)


class Unauthorized(Refusal):
    def __init__(
        self, detail: str = "Station not enrolled: present a valid station token."
    ) -> None:
        super().__init__("station_not_enrolled", detail, 401)


def utcnow() -> datetime:
    return datetime.now(UTC)


def problem_json(refusal: Refusal) -> str:
    return Problem(
        type=f"urn:kiosk:rule:{refusal.rule}",
        title=refusal.rule.replace("_", " ").capitalize(),
        status=refusal.status,
        detail=refusal.detail,
        rule=refusal.rule,
    ).model_dump_json()


class ExecutionService:
    def __init__(self, store: Store, secret: PlantSecret, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.secret = secret
        self.clock = clock

    # --- stations ---------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> domain.StationRef:
        if not token:
            raise Unauthorized()
        with self.store.begin() as conn:
            row = conn.execute(
                select(t.stations).where(t.stations.c.token_sha256 == token_digest(token))
            ).one_or_none()
        if row is None or row.revoked:
            raise Unauthorized()
        return domain.StationRef(row.id, row.name, row.work_center)

    def station_info(self, station: domain.StationRef) -> StationInfo:
        with self.store.begin() as conn:
            row = conn.execute(select(t.stations).where(t.stations.c.id == station.id)).one()
        return StationInfo(
            id=row.id,
            name=row.name,
            work_center=row.work_center,
            config_version=row.config_version,
            config=StationConfig.model_validate_json(row.config),
        )

    def add_station(self, name: str, work_center: str) -> str:
        """Create (or re-key) a station and return a one-time enrollment code for it."""
        code = "-".join(secrets.token_hex(2).upper() for _ in range(3))
        with self.store.begin() as conn:
            station_id = self._station_id(conn, name, work_center)
            conn.execute(
                insert(t.enrollment_codes).values(
                    code_sha256=token_digest(code),
                    station_id=station_id,
                    expires_at=self.clock() + ENROLLMENT_CODE_LIFETIME,
                )
            )
            audit.append(
                conn,
                action="add_station",
                entity=f"station:{name}",
                actor=None,
                station=None,
                new={"work_center": work_center},
            )
        return code

    def _station_id(self, conn: Connection, name: str, work_center: str) -> int:
        existing = conn.execute(select(t.stations.c.id).where(t.stations.c.name == name)).scalar()
        if existing is not None:
            conn.execute(
                update(t.stations)
                .where(t.stations.c.id == existing)
                .values(work_center=work_center, revoked=False)
            )
            return int(existing)
        return int(
            conn.execute(
                insert(t.stations)
                .values(name=name, work_center=work_center)
                .returning(t.stations.c.id)
            ).scalar_one()
        )

    def enroll(self, code: str) -> Enrollment:
        token = new_token()
        with self.store.begin() as conn:
            row = conn.execute(
                select(t.enrollment_codes).where(
                    t.enrollment_codes.c.code_sha256 == token_digest(code.strip().upper())
                )
            ).one_or_none()
            if row is None:
                raise Refusal("enrollment_code_unknown", "That enrollment code is not valid.", 401)
            if row.used_at is not None:
                raise Refusal("enrollment_code_used", "That enrollment code was already used.", 401)
            if audit.micros(row.expires_at) < audit.micros(self.clock()):  # type: ignore[operator]
                raise Refusal(
                    "enrollment_code_expired",
                    "That enrollment code has expired; ask for a new one.",
                    401,
                )
            conn.execute(
                update(t.enrollment_codes)
                .where(t.enrollment_codes.c.code_sha256 == row.code_sha256)
                .values(used_at=self.clock())
            )
            conn.execute(
                update(t.stations)
                .where(t.stations.c.id == row.station_id)
                .values(token_sha256=token_digest(token), revoked=False)
            )
            name = conn.execute(
                select(t.stations.c.name).where(t.stations.c.id == row.station_id)
            ).scalar_one()
            audit.append(conn, action="enroll", entity=f"station:{name}", actor=None, station=name)
        station = self.authenticate(token)
        return Enrollment(station=self.station_info(station), token=token)

    def local_station_token(self, name: str, work_center: str) -> str:
        """The embedded default enrolls its own station: one fresh token per start, held in memory."""
        return self.enroll(self.add_station(name, work_center)).token

    def revoke_station(self, name: str) -> None:
        with self.store.begin() as conn:
            conn.execute(
                update(t.stations)
                .where(t.stations.c.name == name)
                .values(revoked=True, token_sha256=None)
            )
            audit.append(
                conn, action="revoke_station", entity=f"station:{name}", actor=None, station=None
            )

    # --- people -----------------------------------------------------------------------------------

    def login(self, station: domain.StationRef, badge: str) -> Person:
        with self.store.begin() as conn:
            row = self._badge_row(conn, badge)
            if row.locked:
                raise Refusal(
                    "person_locked",
                    f"{row.name} is locked after wrong PINs; a supervisor must unlock.",
                    403,
                )
            centers = row.work_centers.split(",")
            if "*" not in centers and station.work_center not in centers:
                raise Refusal(
                    "not_qualified",
                    f"{row.name} is not qualified for work center {station.work_center}.",
                    403,
                )
            audit.append(
                conn,
                action="badge_in",
                entity=f"user:{row.id}",
                actor=row.name,
                station=station.name,
            )
            return views.person_from_row(row)

    def _badge_row(self, conn: Connection, badge: str) -> Any:
        row = conn.execute(
            select(t.users).where(t.users.c.badge_hmac == self.secret.badge_hash(badge))
        ).one_or_none()
        if row is None or not row.active:
            raise Refusal(
                "badge_unknown", "Badge not recognised. Ask a supervisor to register it.", 403
            )
        return row

    def verify_credentials(self, station: domain.StationRef, creds: Credentials) -> Person:
        """Check badge + PIN. A wrong PIN is counted and committed even though the caller is refused."""
        refusal: Refusal | None = None
        with self.store.begin() as conn:
            row = self._badge_row(conn, creds.badge)
            if row.locked:
                raise Refusal(
                    "person_locked",
                    f"{row.name} is locked after wrong PINs; a supervisor must unlock.",
                    403,
                )
            if pin_matches(row.pin_hash, creds.pin):
                if row.failed_pins:
                    conn.execute(
                        update(t.users).where(t.users.c.id == row.id).values(failed_pins=0)
                    )
                return views.person_from_row(row)
            failures = row.failed_pins + 1
            locked = failures >= MAX_PIN_FAILURES
            conn.execute(
                update(t.users)
                .where(t.users.c.id == row.id)
                .values(failed_pins=failures, locked=locked)
            )
            audit.append(
                conn,
                action="pin_wrong",
                entity=f"user:{row.id}",
                actor=row.name,
                station=station.name,
                old=row.failed_pins,
                new=failures,
            )
            if locked:
                audit.append(
                    conn,
                    action="lock_user",
                    entity=f"user:{row.id}",
                    actor=None,
                    station=station.name,
                    old=False,
                    new=True,
                )
                refusal = Refusal(
                    "person_locked",
                    f"Wrong PIN. {row.name} is now locked; a supervisor must unlock.",
                    403,
                )
            else:
                left = MAX_PIN_FAILURES - failures
                refusal = Refusal(
                    "pin_wrong",
                    f"Wrong PIN. {left} {'try' if left == 1 else 'tries'} left before lock-out.",
                    403,
                )
        raise refusal

    def unlock(self, station: domain.StationRef, key: str, request: UnlockUser) -> tuple[int, str]:
        def run(conn: Connection, signer: Person | None) -> WireModel:
            assert signer is not None
            rules.require_role(signer, rules.UNLOCK_ROLES, "unlock a person")
            row = conn.execute(select(t.users).where(t.users.c.id == request.user_id)).one_or_none()
            if row is None:
                raise views.NotFound(f"Person {request.user_id}")
            conn.execute(
                update(t.users).where(t.users.c.id == row.id).values(locked=False, failed_pins=0)
            )
            audit.append(
                conn,
                action="unlock_user",
                entity=f"user:{row.id}",
                actor=signer.name,
                station=station.name,
                old=True,
                new=False,
            )
            return views.person_from_row(row)

        return self._idempotent(station, key, request, request.credentials, run)

    # --- reads ------------------------------------------------------------------------------------

    def traveler(self, number: str) -> Traveler:
        with self.store.begin() as conn:
            return views.load_traveler(conn, number.strip().upper())

    def queue(self, station: domain.StationRef) -> list[TravelerSummary]:
        with self.store.begin() as conn:
            return views.queue(conn, station.work_center)

    # --- actions ----------------------------------------------------------------------------------

    def perform(self, station: domain.StationRef, key: str, action: Action) -> tuple[int, str]:
        """Apply `action` once per idempotency key; return (HTTP status, JSON body)."""

        def run(conn: Connection, signer: Person | None) -> WireModel:
            change = domain.Change(
                conn=conn,
                station=station,
                actor=domain.load_person(conn, action.actor_id),
                signer=signer,
                now=self.clock(),
                station_time=action.station_time,
                offline=action.offline,
            )
            return domain.apply(change, action)

        return self._idempotent(station, key, action, getattr(action, "credentials", None), run)

    def _idempotent(
        self,
        station: domain.StationRef,
        key: str,
        request: WireModel,
        creds: Credentials | None,
        run: Callable[[Connection, Person | None], WireModel],
    ) -> tuple[int, str]:
        # The PIN never enters the fingerprint: a hash of a 4-digit PIN is trivially reversed.
        fingerprint = hashlib.sha256(
            audit.canonical(request.model_dump(mode="json", exclude={"credentials"})).encode()
        ).hexdigest()
        stored = self._stored_response(key, fingerprint)
        if stored is not None:
            return stored
        try:
            signer = None if creds is None else self.verify_credentials(station, creds)
            with self.store.begin() as conn:
                body = run(conn, signer).model_dump_json()
                self._remember(conn, station, key, fingerprint, 200, body)
            return 200, body
        except Refusal as refusal:
            body = problem_json(refusal)
            try:
                with self.store.begin() as conn:
                    self._remember(conn, station, key, fingerprint, refusal.status, body)
            except IntegrityError:
                pass
            return self._stored_response(key, fingerprint) or (refusal.status, body)
        except IntegrityError:
            # A concurrent delivery of the same key won the race; answer what it answered.
            stored = self._stored_response(key, fingerprint)
            if stored is None:
                raise
            return stored

    def _stored_response(self, key: str, fingerprint: str) -> tuple[int, str] | None:
        with self.store.begin() as conn:
            row = conn.execute(
                select(t.idempotency).where(t.idempotency.c.key == key)
            ).one_or_none()
        if row is None:
            return None
        if row.payload_sha256 != fingerprint:
            raise Refusal(
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.",
                422,
            )
        return int(row.status), str(row.response)

    def _remember(
        self,
        conn: Connection,
        station: domain.StationRef,
        key: str,
        fingerprint: str,
        status: int,
        body: str,
    ) -> None:
        conn.execute(
            insert(t.idempotency).values(
                key=key,
                station_id=station.id,
                payload_sha256=fingerprint,
                status=status,
                response=body,
                created_at=self.clock(),
            )
        )
