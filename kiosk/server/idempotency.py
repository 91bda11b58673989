"""Exactly-once execution: each Idempotency-Key is applied once and its answer kept forever.

The key, the station's sequence number, the effect and the audit records commit together. An
action runs inside a SAVEPOINT, so a refusal rolls back its effect alone while the answer (the
refusal) is still stored: a batch of actions shares one transaction, and one fsync. A batch's
answers are written together as it commits (audit.Pending); until then they are looked up there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, false, insert, select
from sqlalchemy.exc import IntegrityError

from kiosk.rules import Refusal
from kiosk.server import audit
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.store import PENDING_AUDIT, scratch
from kiosk.wire import ActionOutcome, Person, Problem, WireModel


@dataclass(frozen=True)
class Answer:
    """The server's answer to one request: HTTP status, JSON body, and its one-line message."""

    status: int
    body: str
    message: str | None = None

    @property
    def pair(self) -> tuple[int, str]:
        return self.status, self.body

    def outcome(self, key: str) -> ActionOutcome:
        if self.status < 400:
            return ActionOutcome(key=key, status=self.status, message=self.message)
        return ActionOutcome(
            key=key, status=self.status, problem=Problem.model_validate_json(self.body)
        )


def problem_json(refusal: Refusal) -> str:
    return Problem(
        type=f"urn:kiosk:rule:{refusal.rule}",
        title=refusal.rule.replace("_", " ").capitalize(),
        status=refusal.status,
        detail=refusal.detail,
        rule=refusal.rule,
    ).model_dump_json()


def fingerprint(request: WireModel) -> str:
    # The PIN never enters the fingerprint: a hash of a 4-digit PIN is trivially reversed.
    payload = request.model_dump(mode="json", exclude={"credentials"})
    return hashlib.sha256(audit.canonical(payload).encode()).hexdigest()


# Built once: a statement made per call costs more to build than to run.
_ANSWERS = select(t.idempotency).where(
    t.idempotency.c.station_id == bindparam("station"),
    t.idempotency.c.key.in_(bindparam("keys", expanding=True)),
)
_ANSWER = select(t.idempotency).where(
    t.idempotency.c.station_id == bindparam("station"), t.idempotency.c.key == bindparam("key")
)
_REMEMBER = insert(t.idempotency)
_AHEAD = "stations"
"""Where a transaction keeps the stations and answers read ahead for its deliveries."""
# The stations whose tokens deliveries came with, and the answers they were given for the
# deliveries' keys: one read where there would be two for each delivery (kiosk.server.read_ahead).
_STATIONS_AND_ANSWERS = (
    select(
        t.stations.c.token_sha256.label("station_ref_digest"),
        t.stations.c.id.label("station_ref_id"),
        t.stations.c.name.label("station_ref_name"),
        t.stations.c.work_center.label("station_ref_work_center"),
        t.idempotency,
    )
    .select_from(
        t.stations.outerjoin(
            t.idempotency,
            and_(
                t.idempotency.c.station_id == t.stations.c.id,
                t.idempotency.c.key.in_(bindparam("keys", expanding=True)),
            ),
        )
    )
    .where(
        t.stations.c.token_sha256.in_(bindparam("digests", expanding=True)),
        t.stations.c.revoked == false(),
    )
)

StationAnswers = tuple[StationRef | None, dict[str, Any]]
"""The enrolled station with a token (None: no such station), and its stored answers by key."""


def stations_and_answers(
    conn: Connection, digests: list[str], keys: list[str]
) -> dict[str, StationAnswers]:
    """For each token digest, its station and the stored answers of `keys` there, as
    `prefetch` gives them; a digest of no enrolled station has (None, {})."""
    found: dict[str, StationAnswers] = {digest: (None, {}) for digest in digests}
    for row in conn.execute(_STATIONS_AND_ANSWERS, {"digests": digests, "keys": keys}):
        station, known = found[row.station_ref_digest]
        if station is None:
            station = StationRef(
                row.station_ref_id, row.station_ref_name, row.station_ref_work_center
            )
            found[row.station_ref_digest] = station, known
        if row.key is not None:
            known[row.key] = row
    return found


def read_ahead(conn: Connection, digests: list[str], keys: list[str]) -> None:
    """Read the stations of these token digests and their answers of `keys` for the group's
    deliveries (kiosk.server.read_ahead), and keep them in the transaction for
    `station_and_answers`."""
    scratch(conn)[_AHEAD] = stations_and_answers(conn, digests, keys)


def station_and_answers(conn: Connection, digest: str, keys: list[str]) -> StationAnswers:
    """The station with the token of this digest and its stored answers of `keys`: read ahead
    with the group's others, or read now."""
    ahead: dict[str, StationAnswers] = scratch(conn).get(_AHEAD, {})
    if digest in ahead:
        return ahead[digest]
    return stations_and_answers(conn, [digest], keys)[digest]


def prefetch(conn: Connection, station: StationRef, keys: list[str]) -> dict[str, Any]:
    """The stored answers of a batch's keys in one query, instead of one query per action."""
    rows = conn.execute(_ANSWERS, {"station": station.id, "keys": keys})
    return {row.key: row for row in rows}


def stored(
    conn: Connection,
    station: StationRef,
    key: str,
    print_: str,
    known: Mapping[str, Any] | None = None,
) -> Answer | None:
    """The answer this station was given for `key`: keys live in one namespace per station.

    `known`: the batch's answers fetched beforehand (`prefetch`), so no query is needed here.
    Answers given earlier in this transaction and not yet written (audit.Pending) come first.
    """
    pending = conn.info.get(PENDING_AUDIT)
    row: Mapping[Any, Any] | None = pending.answers.get((station.id, key)) if pending else None
    if row is None:  # not given in this transaction: stored earlier, if at all
        if known is not None:
            found = known.get(key)
        else:
            found = conn.execute(_ANSWER, {"station": station.id, "key": key}).one_or_none()
        row = None if found is None else found._mapping
    if row is None:
        return None
    if row["payload_sha256"] != print_:
        raise Refusal(
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
            422,
        )
    return Answer(int(row["status"]), str(row["response"]), _message(str(row["response"])))


def _message(body: str) -> str | None:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None


Identify = Callable[[Connection], Person | Refusal | None]
Work = Callable[[Connection, Person | None], WireModel]


@dataclass(frozen=True)
class Request:
    station: StationRef
    key: str
    body: WireModel
    seq: int | None
    now: datetime
    known: Mapping[str, Any] | None = None
    """Answers already fetched for the batch this request is part of."""


def execute(conn: Connection, request: Request, identify: Identify, work: Work) -> Answer:
    """Apply `work` once for `request.key` inside the caller's transaction.

    `identify` checks badge + PIN before the savepoint, so a wrong PIN is counted even though the
    request is refused.
    """
    print_ = fingerprint(request.body)
    try:
        earlier = stored(conn, request.station, request.key, print_, request.known)
    except Refusal as refusal:
        return Answer(refusal.status, problem_json(refusal))
    if earlier is not None:
        return earlier
    try:
        verified = identify(conn)
        if isinstance(verified, Refusal):
            raise verified
        with audit.savepoint(conn):
            result = work(conn, verified)
            answer = Answer(200, result.model_dump_json(), getattr(result, "message", None))
            _remember(conn, request, print_, answer)
        return answer
    except Refusal as refusal:
        answer = Answer(refusal.status, problem_json(refusal))
        try:
            with audit.savepoint(conn):
                _remember(conn, request, print_, answer)
        except IntegrityError:
            return _concurrent(conn, request, print_)
        return answer
    except IntegrityError:
        return _concurrent(conn, request, print_)


def _concurrent(conn: Connection, request: Request, print_: str) -> Answer:
    """Another server process delivered the same key at the same moment: answer what it answered."""
    earlier = stored(conn, request.station, request.key, print_)
    if earlier is None:
        raise RuntimeError(f"idempotency conflict on {request.key} without a stored answer")
    return earlier


def _remember(conn: Connection, request: Request, print_: str, answer: Answer) -> None:
    row = {
        "key": request.key,
        "station_id": request.station.id,
        "station_seq": request.seq,
        "payload_sha256": print_,
        "status": answer.status,
        "response": answer.body,
        "created_at": request.now,
    }
    pending = conn.info.get(PENDING_AUDIT)
    if pending is not None and pending.holds_answers:
        pending.answers[(request.station.id, request.key)] = row
    else:
        conn.execute(_REMEMBER, row)
