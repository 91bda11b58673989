"""What a delivered batch keeps between its values: the traveler's row and the rules' view of the
step being recorded on.

A station draining its outbox sends hundreds of values in a row, most of them on one step. Read
afresh for each, the row and the view were two of a value's three statements, and building the
view was a fifth of the server's time. They are kept only in a transaction that stands or falls
whole (`audit.all_or_nothing`): where a savepoint may roll back, what was read may be given back
(on PostgreSQL, a rollback to a savepoint also gives back the row's lock). The row stays locked
until the batch commits, so no other writer of the traveler comes between its values.

Only recording a value keeps anything. Its handler brings the kept view up to date with the value
(`value_recorded`), or drops it where the value changed more than its item: a tool's use, a lot's
consumption, a deviation claimed. Any other kind of action forgets everything kept, and reads
afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, RowMapping

from kiosk import rules
from kiosk.server import audit, views
from kiosk.server.store import scratch
from kiosk.wire import Action, RecordedValue, Traveler

KEEPING = frozenset({"record_value"})
"""Kinds that change nothing of a traveler but an item's latest value."""


@dataclass
class _StepView:
    step_id: int
    """The step the view was built for: a value on another step needs other steps around it."""
    traveler: Traveler


@dataclass
class _Kept:
    rows: dict[str, RowMapping] = field(default_factory=dict)
    views: dict[str, _StepView] = field(default_factory=dict)


def _in(conn: Connection) -> _Kept:
    """What this transaction keeps."""
    kept: _Kept = scratch(conn).setdefault("kept", _Kept())
    return kept


def _kept(conn: Connection, action: Action) -> _Kept | None:
    """What this transaction keeps for `action`, or None: then nothing is kept any more."""
    kept = _in(conn)
    if audit.all_or_nothing(conn) and action.kind in KEEPING:
        return kept
    kept.rows.clear()
    kept.views.clear()
    return None


def traveler_row(conn: Connection, action: Action) -> RowMapping:
    """The traveler's row, locked: read once for the values in a row on it."""
    kept = _kept(conn, action)
    if kept is None:
        return views.traveler_row(conn, action.traveler, lock=True)
    if action.traveler not in kept.rows:
        kept.rows[action.traveler] = views.traveler_row(conn, action.traveler, lock=True)
    return kept.rows[action.traveler]


def read_ahead(conn: Connection, numbers: list[str], values: dict[str, int]) -> None:
    """Keep the rows of the travelers that a group's values are on, read in one statement, and
    the view of each traveler's first value (`values`: its item), in one more (kiosk.server.
    read_ahead): where a transaction keeps them, as `traveler_row` and `rules_view` would."""
    if not (audit.all_or_nothing(conn) and numbers):
        return
    kept = _in(conn)
    kept.rows.update(views.traveler_rows_locked(conn, numbers))
    rows = {number: kept.rows[number] for number in values if number in kept.rows}
    for number, view in views.for_values(conn, rows, values).items():
        step_id = _step_of(view, values[number])
        assert step_id is not None  # for_values gives only the views holding their item
        kept.views[number] = _StepView(step_id, view)


def rules_view(conn: Connection, row: RowMapping, action: Action) -> Traveler:
    """The traveler as the action's rules see it (`views.for_action`); for a value on the same
    step as the value before it, the view that value left."""
    kept = _kept(conn, action)
    if kept is None:
        return views.for_action(conn, row, action)
    found = kept.views.get(action.traveler)
    item_id = getattr(action, "item_id", None)
    if found is not None and _step_of(found.traveler, item_id) == found.step_id:
        return found.traveler
    view = views.for_action(conn, row, action)
    step_id = _step_of(view, item_id)
    if step_id is not None:
        kept.views[action.traveler] = _StepView(step_id, view)
    return view


def value_recorded(
    conn: Connection, traveler: str, item_id: int, latest: RecordedValue | None, failed: bool
) -> None:
    """Bring the kept view of `traveler` up to date with a value on `item_id`: its item's latest
    and whether any value failed. `latest` None: the value changed more than its item, and every
    view is dropped: a tool's use, a lot's consumption or a deviation's claim may change what
    another traveler's view holds (the last of a deviation's quantity)."""
    kept: _Kept | None = scratch(conn).get("kept")
    if kept is None:
        return
    if latest is None:
        kept.views.clear()
        return
    found = kept.views.get(traveler)
    if found is not None:
        found.traveler = rules.with_latest(found.traveler, item_id, latest, failed)


def _step_of(view: Traveler, item_id: int | None) -> int | None:
    if item_id is None:
        return None
    return next((s.id for s in view.steps for i in s.items if i.id == item_id), None)
