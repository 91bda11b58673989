"""The outbox: every action a station records is committed here first, then delivered in order.

An entry is "recorded" only once its COMMIT has returned; the screen says so only after that.
Entries are never deleted: applied ones stay as the station's own log, refused ones wait for a
supervisor to re-do or dismiss them, and the sequence number therefore has no gaps.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import TypeAdapter

from kiosk.client.local_db import LocalDb
from kiosk.wire import Action, ActionOutcome, Person, QueuedAction, SignedAction

State = Literal["pending", "applied", "refused", "dismissed", "redone"]
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Entry:
    seq: int
    key: str
    traveler: str
    kind: str
    actor: str
    action: Action
    recorded_at: datetime
    state: State
    attempts: int
    message: str | None
    rule: str | None
    last_error: str | None
    person: Person
    """Who recorded it, with roles: pending entries are re-applied to the screen under the rules."""
    signer: Person | None = None
    """Who signed, for a signature: shown on this station until the server confirms it."""

    def queued(self) -> QueuedAction:
        return QueuedAction(key=self.key, station_seq=self.seq, action=self.action)

    @property
    def by(self) -> str:
        """Whose act it is: the signer's for a signature (who tried to sign), else the actor's."""
        return self.signer.name if self.signer is not None else self.actor

    @property
    def summary(self) -> str:
        return f"#{self.seq} {self.traveler} {self.kind.replace('_', ' ')} by {self.by}"


def _entry(r: sqlite3.Row) -> Entry:
    return Entry(
        seq=r["seq"],
        key=r["key"],
        traveler=r["traveler"],
        kind=r["kind"],
        actor=r["actor"],
        action=_ACTION.validate_json(r["payload"]),
        recorded_at=datetime.fromisoformat(r["recorded_at"]),
        state=r["state"],
        attempts=r["attempts"],
        message=r["message"],
        rule=r["rule"],
        last_error=r["last_error"],
        person=Person.model_validate_json(r["person"]),
        signer=Person.model_validate_json(r["signer"]) if r["signer"] else None,
    )


class Outbox:
    def __init__(self, db: LocalDb) -> None:
        self.db = db

    def record(self, action: Action, actor: Person, signer: Person | None = None) -> Entry:
        """Commit `action` (stamped with the station's time) and return it once it is on disk."""
        if action.station_time is None:
            action = action.model_copy(update={"station_time": now_utc()})
        if isinstance(action, SignedAction) and action.credentials is not None:
            raise ValueError("a PIN never goes into the outbox: queue a ticket or attestation")
        key = str(uuid.uuid4())
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO entries (key, traveler, kind, actor, person, signer, payload, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    action.traveler,
                    action.kind,
                    actor.name,
                    actor.model_dump_json(),
                    signer.model_dump_json() if signer else None,
                    action.model_dump_json(),
                    now_utc().isoformat(),
                ),
            )
            seq = cursor.lastrowid
        assert seq is not None
        return self.get(seq)

    def get(self, seq: int) -> Entry:
        return _entry(self.db.query("SELECT * FROM entries WHERE seq = ?", (seq,))[0])

    def pending(self, limit: int = 100) -> list[Entry]:
        rows = self.db.query(
            "SELECT * FROM entries WHERE state = 'pending' ORDER BY seq LIMIT ?", (limit,)
        )
        return [_entry(r) for r in rows]

    def entries(self, state: State | None = None, traveler: str | None = None) -> list[Entry]:
        sql, params = "SELECT * FROM entries WHERE 1=1", list[object]()
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        if traveler is not None:
            sql, params = sql + " AND traveler = ?", [*params, traveler]
        return [_entry(r) for r in self.db.query(sql + " ORDER BY seq", tuple(params))]

    def applied_since(self, traveler: str, since: datetime) -> set[int]:
        """Entries on `traveler` the server applied at or after `since` (by this station's clock)."""
        rows = self.db.query(
            "SELECT seq FROM entries WHERE traveler = ? AND state = 'applied' AND answered_at >= ?",
            (traveler, since.isoformat()),
        )
        return {r["seq"] for r in rows}

    def pending_by_traveler(self) -> dict[str, int]:
        rows = self.db.query(
            "SELECT traveler, COUNT(*) AS n FROM entries WHERE state = 'pending' "
            "GROUP BY traveler ORDER BY traveler"
        )
        return {r["traveler"]: r["n"] for r in rows}

    def counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT state, COUNT(*) AS n FROM entries GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def waiting(self) -> int:
        return self.counts().get("pending", 0)

    # --- answers from the server ------------------------------------------------------------------

    def mark_refused(self, key: str, rule: str | None, detail: str) -> None:
        self._answer([(key, "refused", detail, rule)])

    def mark_answered(self, outcomes: Sequence[ActionOutcome]) -> None:
        """The server's answers to a delivered batch, stored together: one commit (one fsync)
        for the batch, not one an action, which after an outage is most of a drain's time.
        All or none: a batch whose answers were lost is sent again, and answered again alike."""
        self._answer([_answered(outcome) for outcome in outcomes])

    def _answer(self, answers: list[tuple[str, State, str | None, str | None]]) -> None:
        moment = now_utc().isoformat()
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE entries SET state = ?, message = ?, rule = ?, answered_at = ? "
                "WHERE key = ? AND state = 'pending'",
                [(state, message, rule, moment, key) for key, state, message, rule in answers],
            )

    def mark_offline(self, since: datetime | None) -> int:
        """The server could not be reached: what was recorded since it last answered was
        recorded offline, whatever the station believed then (the as-built says so)."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT seq, payload FROM entries WHERE state = 'pending' AND recorded_at >= ?",
                ((since or datetime.min.replace(tzinfo=UTC)).isoformat(),),
            ).fetchall()
            changed = 0
            for seq, payload in rows:
                action = _ACTION.validate_json(payload)
                if not action.offline:
                    marked = action.model_copy(update={"offline": True}).model_dump_json()
                    conn.execute("UPDATE entries SET payload = ? WHERE seq = ?", (marked, seq))
                    changed += 1
        return changed

    def note_failure(self, keys: list[str], error: str) -> None:
        """A transport failure: the entries stay pending and are tried again later."""
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE entries SET attempts = attempts + 1, last_error = ? WHERE key = ?",
                [(error, k) for k in keys],
            )

    # --- a supervisor resolves refusals --------------------------------------------------------

    def dismiss(self, seq: int, supervisor: str) -> None:
        self._resolve(seq, "dismissed", supervisor)

    def redo(self, seq: int, supervisor: str) -> Entry:
        """Queue the refused action again, as it was recorded, under a new key.

        It keeps its time and its proofs: a refusal gave its proof back (a proof is used up only
        by an action that is applied), so the same proven action can stand once it may.
        """
        old = self.get(seq)
        if old.state != "refused":
            raise ValueError(f"entry #{seq} is {old.state}, not refused")
        entry = self.record(old.action, old.person, old.signer)
        self._resolve(seq, "redone", supervisor)
        return entry

    def _resolve(self, seq: int, state: State, supervisor: str) -> None:
        with self.db.transaction() as conn:
            changed = conn.execute(
                "UPDATE entries SET state = ?, resolved_by = ? WHERE seq = ? AND state = 'refused'",
                (state, supervisor, seq),
            ).rowcount
        if changed != 1:
            raise ValueError(f"entry #{seq} is not a refused entry")

    # --- sync bookkeeping -------------------------------------------------------------------------

    def last_sync(self) -> datetime | None:
        rows = self.db.query("SELECT value FROM meta WHERE key = 'last_sync'")
        return datetime.fromisoformat(rows[0]["value"]) if rows else None

    def note_sync(self) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_sync', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (now_utc().isoformat(),),
            )


def _answered(outcome: ActionOutcome) -> tuple[str, State, str | None, str | None]:
    """(key, state, message, rule) of the server's answer to one delivered entry."""
    if outcome.status < 400:
        return outcome.key, "applied", outcome.message, None
    problem = outcome.problem
    detail = problem.detail if problem else f"refused ({outcome.status})"
    return outcome.key, "refused", detail, problem.rule if problem else None
