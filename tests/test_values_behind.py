"""A group's values are written together as it commits (kiosk.server.values_behind): a value
costs no statement of its own, yet every action after it in the group finds it, and a value that
cannot be written then leaves the group to be run again, carefully, losing nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text

from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import Action, ActionBatch, QueuedAction, StepStatus
from tests.conftest import _backends
from tests.helpers import ServiceFloor, new_key, step_of, values_of
from tests.test_constant_cost import ana_on_a_long_traveler, statements, values_batch


def delivered(floor: ServiceFloor, first: int, size: int) -> tuple[list[int], list[str]]:
    """Statuses and statements of delivering `size` notes on TRV-LONG's step 10.1."""
    item = step_of(floor.service.traveler("TRV-LONG"), "10.1").items[0]
    batch = values_batch(floor, item.id, first, size)
    with statements(floor.service) as seen:
        outcomes = floor.service.perform_batch(floor.station, batch).outcomes
    return [o.status for o in outcomes], seen


def test_a_hundred_values_cost_the_statements_of_ten(service: ExecutionService) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    ten, ten_seen = delivered(floor, 1, 10)
    hundred, hundred_seen = delivered(floor, 11, 100)
    assert ten == [200] * 10 and hundred == [200] * 100
    assert len(hundred_seen) == len(ten_seen)
    item = step_of(trav, "10.1").items[0]
    assert values_of(service, item.id) == [f"note {n}" for n in range(1, 111)]
    assert service.traveler("TRV-LONG").steps[0].items[0].latest.value == "note 110"  # type: ignore[union-attr]


def test_the_sign_off_after_a_value_in_the_same_batch_finds_it(service: ExecutionService) -> None:
    """Step 10.1 wants its note before it can be signed: both come in one batch, and the
    sign-off, which reads the step afresh, finds the note written before it reads, the first
    time round."""
    floor, trav = ana_on_a_long_traveler(service)
    note = floor.record("ana", trav, "10.1", "Note", "checked", station_time=datetime.now(UTC))
    actions: list[Action] = [note, floor.sign("ana", trav, "10.1")]
    batch = ActionBatch(
        actions=tuple(
            QueuedAction(key=new_key(), station_seq=n, action=floor.proven(action))
            for n, action in enumerate(actions, 1)
        )
    )
    with statements(service) as seen:
        outcomes = service.perform_batch(floor.station, batch).outcomes
    assert [o.status for o in outcomes] == [200, 200], outcomes
    assert not [s for s in seen if "SAVEPOINT" in s]  # found at once, not on a careful run again
    step = step_of(service.traveler("TRV-LONG"), "10.1")
    assert step.status is StepStatus.COMPLETE
    assert step.items[0].latest is not None and step.items[0].latest.value == "checked"


@pytest.mark.parametrize("plant", _backends()[1:], indirect=True)
def test_a_value_that_cannot_be_written_at_commit_sends_the_group_round_again(
    service: ExecutionService,
) -> None:
    """A row already holds the next id of the values' sequence (a restore that left the sequence
    behind its table): the group's first value, given that id, is refused as the group commits.
    The group runs again with its savepoints and every value stands, each recorded once."""
    floor, trav = ana_on_a_long_traveler(service)
    other_item = step_of(trav, "10.2").items[0]
    with service.store.begin() as conn:
        seq = conn.execute(text("SELECT last_value, is_called FROM recorded_values_id_seq")).one()
        taken = seq.last_value + 1 if seq.is_called else seq.last_value
        conn.execute(
            insert(t.recorded_values).values(
                id=taken, item_id=other_item.id, value="restored", passed=None,
                user_id=floor.ids["ana"], station_id=floor.station.id,
                server_time=datetime.now(UTC), offline=False,
            )
        )  # fmt: skip
    statuses, seen = delivered(floor, 1, 3)
    assert statuses == [200, 200, 200]
    assert any(s.startswith("SAVEPOINT") for s in seen)  # it ran again, carefully
    item = step_of(trav, "10.1").items[0]
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3"]
    assert values_of(service, other_item.id) == ["restored"]
    with service.store.read() as conn:
        ids = select(t.recorded_values.c.id).where(t.recorded_values.c.item_id == item.id)
        entities = [f"value:{n}" for n in conn.execute(ids).scalars()]
        trail = conn.execute(
            select(t.audit_log.c.entity).where(t.audit_log.c.entity.in_(entities))
        ).scalars()
        assert sorted(trail) == sorted(entities)  # each value's record, once
