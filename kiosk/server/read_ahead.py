"""What the deliveries of one group will read first, read for all of them at once.

Each delivery in a group (kiosk.server.group_commit) starts by reading its station by the token
it came with and the answers already given for its keys, then each of its actions' person
session, and then, for a value, the row of its traveler and the rules' view of the value's step.
That is four statements a delivery, run one after another on the group's one connection: most of
a value's statements. Read ahead, they are four a group. They are read in the same transaction,
before anything of the group is written, and left where the delivery looks first (the
transaction's scratch). Nothing read ahead is changed unseen by a delivery of the group: sessions
and stations change only in transactions of their own (badge in, sign out, revoke), an answer
given in the group is found among the transaction's own answers first, and a kept traveler row
and view are brought up to date by a value, or given up as soon as an action that may change
more runs (kiosk.server.kept). The travelers' rows are locked before their steps are read: no
other writer of them comes between.

Only the first run of a group reads ahead: it keeps nothing where a savepoint may roll back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from kiosk.server import audit, idempotency, kept, people, values_behind
from kiosk.server.security import token_digest
from kiosk.wire import Action, ActionBatch


@dataclass(frozen=True)
class Needs:
    """What one delivery will read first."""

    station: str | None
    """The digest of the station token it came with (None: its station is known already)."""
    keys: tuple[str, ...]
    sessions: tuple[str, ...]
    """The digests of its actions' person sessions."""
    travelers: tuple[str, ...]
    """The travelers it records values on."""
    values: tuple[tuple[str, int], ...] = ()
    """Each traveler whose first action here records a value, with that value's item."""
    recorded: int = 0
    """How many of its actions record a value: ids are drawn for them (values_behind)."""


def needs_of(token: str | None, batch: ActionBatch) -> Needs:
    actions = [q.action for q in batch.actions]
    return Needs(
        station=token_digest(token) if token else None,
        keys=tuple(q.key for q in batch.actions),
        sessions=tuple({token_digest(a.session) for a in actions if a.session is not None}),
        travelers=tuple({a.traveler for a in actions if a.kind in kept.KEEPING}),
        values=tuple(_first_values(actions).items()),
        recorded=sum(1 for a in actions if a.kind in kept.KEEPING),
    )


def _first_values(actions: list[Action]) -> dict[str, int]:
    first: dict[str, int | None] = {}
    for action in actions:
        first.setdefault(
            action.traveler,
            getattr(action, "item_id", None) if action.kind in kept.KEEPING else None,
        )
    return {number: item for number, item in first.items() if item is not None}


def read_ahead(conn: Connection, group: list[Needs]) -> None:
    """Read what the group's deliveries will need, four statements in all, and keep it in the
    transaction for them; and draw the ids of the values they record, in one more."""
    stations = sorted({n.station for n in group if n.station is not None})
    if stations:
        keys = sorted({key for n in group if n.station is not None for key in n.keys})
        idempotency.read_ahead(conn, stations, keys)
    sessions = sorted({digest for n in group for digest in n.sessions})
    if sessions:
        people.read_ahead(conn, sessions)
    values: dict[str, int] = {}
    for n in group:
        for number, item_id in n.values:
            values.setdefault(number, item_id)  # the first delivery on it reads its view first
    kept.read_ahead(conn, sorted({number for n in group for number in n.travelers}), values)
    if audit.all_or_nothing(conn):
        values_behind.draw(conn, sum(n.recorded for n in group))
