"""The execution service: transactions, idempotency, identification and stations.

Routes and CLI commands call this class; it owns the transaction boundaries and leaves the rules
to `kiosk.rules` and the writes to `kiosk.server.domain`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, delete, false, insert, select, update

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, domain, fleet, idempotency, people, quality, read_ahead, views
from kiosk.server import schema as t
from kiosk.server.files import FileStore
from kiosk.server.group_commit import GroupCommit
from kiosk.server.security import PlantSecret, new_token, token_digest
from kiosk.server.store import Store
from kiosk.wire import (
    Action,
    ActionApplied,
    ActionBatch,
    ActionResult,
    AdminSession,
    BatchResult,
    Checkpoint,
    CredentialCache,
    Credentials,
    Enrollment,
    Heartbeat,
    HeartbeatAnswer,
    Person,
    PlantOverview,
    SignedAction,
    SignedIn,
    SignOut,
    StationConfig,
    StationInfo,
    Traveler,
    TravelerSummary,
    UnlockUser,
    Verified,
    WireModel,
)

ENROLLMENT_CODE_LIFETIME = timedelta(hours=24)


class Unauthorized(Refusal):
    def __init__(
        self, detail: str = "Station not enrolled: present a valid station token."
    ) -> None:
        super().__init__("station_not_enrolled", detail, 401)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Presented:
    """A station token as a request presents it, checked inside the transaction that acts on it:
    one indexed read where the action's transaction is open anyway, not a transaction of its own."""

    token: str | None = field(repr=False)


_BY_TOKEN = select(t.stations.c.id, t.stations.c.name, t.stations.c.work_center).where(
    t.stations.c.token_sha256 == bindparam("digest"), t.stations.c.revoked == false()
)


def _station_of(conn: Connection, token: str) -> domain.StationRef:
    row = conn.execute(_BY_TOKEN, {"digest": token_digest(token)}).one_or_none()
    if row is None:
        raise Unauthorized()
    return domain.StationRef(row.id, row.name, row.work_center)


class ExecutionService:
    def __init__(
        self,
        store: Store,
        secret: PlantSecret,
        clock: Callable[[], datetime] = utcnow,
        *,
        witness: Path | None = None,
        files: FileStore | None = None,
    ) -> None:
        self.store = store
        self.secret = secret
        self.clock = clock
        self.witness = witness
        """Where each signed checkpoint is also written, outside the database."""
        self._files = files
        self.group = GroupCommit(store, read_ahead=read_ahead.read_ahead)

    @property
    def files(self) -> FileStore:
        """The plant's kept files (photos, drawings); a service built without one keeps none."""
        if self._files is None:
            raise Refusal("files_unavailable", "This server keeps no files.", 503)
        return self._files

    # --- stations ---------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> domain.StationRef:
        if not token:
            raise Unauthorized()
        with self.store.read() as conn:
            return _station_of(conn, token)

    def _station_and_answers(
        self, conn: Connection, who: domain.StationRef | Presented, keys: list[str]
    ) -> tuple[domain.StationRef, dict[str, Any]]:
        """The station, and the answers it was already given for `keys`."""
        if isinstance(who, domain.StationRef) or not who.token:
            station = self._station(conn, who)
            return station, idempotency.prefetch(conn, station, keys)
        found, known = idempotency.station_and_answers(conn, token_digest(who.token), keys)
        if found is None:
            raise Unauthorized()
        return found, known

    def _station(self, conn: Connection, who: domain.StationRef | Presented) -> domain.StationRef:
        """The station, its token checked in the transaction of the request it came with."""
        if isinstance(who, domain.StationRef):
            return who
        if not who.token:
            raise Unauthorized()
        return _station_of(conn, who.token)

    def station_info(self, station: domain.StationRef) -> StationInfo:
        with self.store.read() as conn:
            row = conn.execute(select(t.stations).where(t.stations.c.id == station.id)).one()
            codes = quality.settings(conn).defect_codes
        return StationInfo(
            id=row.id,
            name=row.name,
            work_center=row.work_center,
            config_version=row.config_version,
            config=StationConfig.model_validate_json(row.config),
            defect_codes=codes,
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
                .values(name=name, work_center=work_center, badge_salt=os.urandom(16).hex())
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
        """Its token stops working at once, and whatever it holds for offline work with it: its
        person sessions end and the keys in its credential cache are withdrawn."""
        with self.store.begin() as conn:
            station_id = conn.execute(
                update(t.stations)
                .where(t.stations.c.name == name)
                .values(revoked=True, token_sha256=None)
                .returning(t.stations.c.id)
            ).scalar()
            if station_id is not None:
                ref = domain.StationRef(int(station_id), name, "")
                people.end_sessions(conn, ref, self.clock(), "station_revoked")
                conn.execute(
                    delete(t.station_verifiers).where(
                        t.station_verifiers.c.station_id == station_id
                    )
                )
            audit.append(
                conn, action="revoke_station", entity=f"station:{name}", actor=None, station=None
            )

    # --- people -----------------------------------------------------------------------------------

    def login(self, station: domain.StationRef, badge: str) -> SignedIn:
        """An online badge-in: the person, and the session that proves them on actions here.

        An unknown badge is counted against the station even though the caller is refused.
        """
        with self.store.begin() as conn:
            signed_in = people.badge_in(conn, self.secret, station, badge, self.clock())
        if isinstance(signed_in, Refusal):
            raise signed_in
        return signed_in

    def logout(self, station: domain.StationRef, body: SignOut) -> int:
        """End a person session at this station (sign-out, idle lock); answers how many ended."""
        with self.store.begin() as conn:
            return people.end_sessions(conn, station, self.clock(), body.reason, body.session)

    def verify_credentials(self, station: domain.StationRef, creds: Credentials) -> Person:
        """Check badge + PIN. A wrong PIN is counted and committed even though the caller is refused."""
        with self.store.begin() as conn:
            checked = self._check(conn, station, creds)
        if isinstance(checked, Refusal):
            raise checked
        return checked

    def _check(
        self, conn: Connection, station: domain.StationRef, creds: Credentials
    ) -> Person | Refusal:
        return people.check_credentials(
            conn, self.secret, station, creds.badge, creds.pin, self.clock()
        )

    def verify(self, station: domain.StationRef, creds: Credentials) -> Verified:
        """Badge + PIN checked now; the ticket lets a queued signature prove it without the PIN."""
        person = self.verify_credentials(station, creds)
        with self.store.begin() as conn:
            hours = people.station_config(conn, station).offline_window_hours
            ticket, expires = people.issue_ticket(conn, station, person, self.clock(), hours)
        return Verified(person=person, ticket=ticket, expires_at=expires)

    def credential_cache(self, station: domain.StationRef) -> CredentialCache:
        with self.store.begin() as conn:
            return people.credential_cache(conn, station, self.clock())

    def unlock(self, station: domain.StationRef, key: str, request: UnlockUser) -> tuple[int, str]:
        def work(conn: Connection, signer: Person | None) -> WireModel:
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

        with self.store.begin() as conn:
            req = idempotency.Request(station, key, request, None, self.clock())
            identify = partial(self._check, station=station, creds=request.credentials)
            return idempotency.execute(conn, req, lambda c: identify(c), work).pair

    def seal_audit(self) -> Checkpoint | None:
        """Sign a checkpoint of the audit chain's head (nothing to do if it is already sealed),
        and write it to the witness file beside the plant secret as well."""
        with self.store.begin() as conn:
            checkpoint = audit.seal(conn, self.secret.checkpoint_key(), self.clock())
        if checkpoint is not None and self.witness is not None:
            audit.append_witness(self.witness, checkpoint)
        return checkpoint

    # --- the fleet --------------------------------------------------------------------------------

    def heartbeat(self, station: domain.StationRef, beat: Heartbeat) -> HeartbeatAnswer:
        with self.store.begin() as conn:
            version = fleet.record_heartbeat(conn, station, beat, self.clock())
            checkpoint = audit.latest_checkpoint(conn)
        return HeartbeatAnswer(config_version=version, checkpoint=checkpoint)

    def admin_session(self, station: domain.StationRef, creds: Credentials) -> AdminSession:
        admin = self.verify_credentials(station, creds)
        with self.store.begin() as conn:
            return fleet.open_session(conn, station, admin, self.clock())

    def overview(self, station: domain.StationRef, session: str | None) -> PlantOverview:
        with self.store.read() as conn:
            fleet.session_admin(conn, station, session, self.clock())
            return fleet.overview(conn, self.clock())

    def set_station_config(
        self, station: domain.StationRef, session: str | None, name: str, config: StationConfig
    ) -> int:
        with self.store.begin() as conn:
            admin = fleet.session_admin(conn, station, session, self.clock())
            return fleet.set_config(conn, name, config, admin, station)

    def admin_add_station(
        self, station: domain.StationRef, session: str | None, name: str, work_center: str
    ) -> str:
        with self.store.begin() as conn:
            fleet.session_admin(conn, station, session, self.clock())
        return self.add_station(name, work_center)

    # --- reads ------------------------------------------------------------------------------------

    def traveler(self, number: str, **part: str | None) -> Traveler:
        """The traveler; `operation=` or `first=`/`last=` (step numbers) for part of it."""
        with self.store.read() as conn:
            return views.load_traveler(conn, number.strip().upper(), **part)

    def queue(
        self,
        station: domain.StationRef,
        *,
        after: str | None = None,
        search: str | None = None,
        limit: int = views.QUEUE_PAGE,
    ) -> list[TravelerSummary]:
        with self.store.read() as conn:
            return views.queue(conn, station.work_center, after=after, search=search, limit=limit)

    # --- actions ----------------------------------------------------------------------------------

    def perform(
        self,
        who: domain.StationRef | Presented,
        key: str,
        action: Action,
        station_seq: int | None = None,
    ) -> tuple[int, str]:
        """Apply `action` once per idempotency key; return (HTTP status, JSON body)."""
        with self.store.begin() as conn:
            station = self._station(conn, who)
            answer = self._perform(conn, station, key, action, station_seq, with_traveler=True)
            if answer.status < 400 and '"traveler"' not in answer.body:
                # First delivered inside a batch, asked again alone: add the traveler now.
                applied = ActionApplied.model_validate_json(answer.body)
                trav = views.load_traveler(conn, action.traveler)
                full = ActionResult(applied=applied.applied, message=applied.message, traveler=trav)
                return answer.status, full.model_dump_json()
            return answer.pair

    def perform_batch(self, who: domain.StationRef | Presented, batch: ActionBatch) -> BatchResult:
        """Apply queued actions in the station's order in one transaction: one commit (one fsync)
        per batch at most, and a refusal stops nothing (kiosk.server.group_commit runs the
        transaction again with a savepoint for each action when one is refused)."""
        return self.group.run(*self._delivery(who, batch))

    async def perform_batch_async(
        self, who: domain.StationRef | Presented, batch: ActionBatch
    ) -> BatchResult:
        """`perform_batch` for a request on the event loop: no thread waits for it."""
        return await self.group.run_async(*self._delivery(who, batch))

    def _delivery(
        self, who: domain.StationRef | Presented, batch: ActionBatch
    ) -> tuple[Callable[[Connection], BatchResult], read_ahead.Needs]:
        """The group commit's job for a delivered batch, and what it will read first."""
        keys = [q.key for q in batch.actions]

        def deliver(conn: Connection) -> BatchResult:
            station, known = self._station_and_answers(conn, who, keys)
            outcomes = tuple(
                self._perform(conn, station, q.key, q.action, q.station_seq, known=known).outcome(
                    q.key
                )
                for q in batch.actions
            )
            return BatchResult(outcomes=outcomes)

        # Batches delivered by other stations at the same moment share the transaction.
        token = who.token if isinstance(who, Presented) else None
        return deliver, read_ahead.needs_of(token, batch)

    def _perform(
        self,
        conn: Connection,
        station: domain.StationRef,
        key: str,
        action: Action,
        seq: int | None,
        *,
        with_traveler: bool = False,
        known: dict[str, Any] | None = None,
    ) -> idempotency.Answer:
        now = self.clock()

        def identify(conn: Connection) -> Person | Refusal | None:
            creds = action.credentials if isinstance(action, SignedAction) else None
            return None if creds is None else self._check(conn, station, creds)

        def work(conn: Connection, verified: Person | None) -> WireModel:
            # Inside the action's savepoint: a refusal later on gives back a proof's nonce or
            # ticket, so the same proven action can be re-done once.
            actor, actor_offline = people.prove_actor(conn, self.secret, station, action, now)
            signer, signer_offline = self._signer(conn, station, action, verified, now)
            change = domain.Change(
                conn=conn,
                station=station,
                actor=actor,
                signer=signer,
                now=now,
                station_time=action.station_time,
                offline=action.offline or actor_offline or signer_offline,
            )
            return domain.apply(change, action, with_traveler=with_traveler)

        return idempotency.execute(
            conn, idempotency.Request(station, key, action, seq, now, known), identify, work
        )

    def _signer(
        self,
        conn: Connection,
        station: domain.StationRef,
        action: Action,
        verified: Person | None,
        now: datetime,
    ) -> tuple[Person | None, bool]:
        """Who signs, from proof; and whether the proof was made offline."""
        if not isinstance(action, SignedAction):
            return None, False
        if action.proofs() > 1:
            raise Refusal(
                "signature_proof_ambiguous",
                "A signature carries one proof of its signer: badge and PIN, a ticket, or an "
                "offline proof.",
                422,
            )
        offline = False
        if action.ticket is not None:
            signer = people.redeem_ticket(conn, station, action.ticket, now)
        elif action.attestation is not None:
            proof = action.attestation
            signer = people.verify_offline(
                conn, self.secret, station, proof.signer_id, "sign", proof, action, now
            )
            offline = True
        elif verified is not None:
            signer = verified
        else:
            raise Refusal(
                "signature_unproven", "A signature needs the signer's badge and PIN.", 403
            )
        rules.ensure_qualified(signer, station.work_center)
        return signer, offline
