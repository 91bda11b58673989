"""An action costs the same whatever the traveler's size or history: the same SQL statements for a
value recorded on a 6-step traveler, on a 1,000-step one, and on an item with 1,000 values; a
delivered batch costs one commit, and deliveries that arrive together share one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import event, select

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService, Presented
from kiosk.wire import (
    ActionBatch,
    ItemKind,
    QueuedAction,
    RaiseAndon,
    RecordValue,
    SignOut,
    Traveler,
)
from tests.conftest import Plant
from tests.helpers import ServiceFloor, audit_count, new_key, station_ref, step_of, values_of


@contextmanager
def statements(service: ExecutionService) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(service.store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(service.store.engine, "before_cursor_execute", count)


NOTE = {"label": "Note", "kind": ItemKind.TEXT.value}
BORE = {"label": "Bore", "kind": ItemKind.MEASUREMENT.value, "unit": "mm", "nominal": 12.7,
        "lower": 12.69, "upper": 12.71}  # fmt: skip


def long_traveler(service: ExecutionService, steps: int, item: dict[str, Any] = NOTE) -> None:
    spec = {
        "number": "WO-LONG", "part_number": "L-1", "part_name": "Long part", "quantity": 1,
        "travelers": [{"number": "TRV-LONG"}],
        "routing": [{"number": "10", "name": "All", "work_center": "ASSEMBLY", "steps": [
            {"number": f"10.{n}", "title": f"Step {n}", "instructions": "Note it.",
             "items": [item]}
            for n in range(1, steps + 1)]}],
    }  # fmt: skip
    with service.store.begin() as conn:
        erp.load(conn, erp.PlantImport.model_validate({"work_orders": [spec]}))


def ana_on_a_long_traveler(
    service: ExecutionService, item: dict[str, Any] = NOTE
) -> tuple[ServiceFloor, Traveler]:
    """TRV-LONG of 6 steps, each with one `item`, Ana badged in and on its step 10.1."""
    long_traveler(service, 6, item)
    floor = ServiceFloor(service)
    return floor, floor.do(floor.start("ana", service.traveler("TRV-LONG"), "10.1")).traveler


def record_once(floor: ServiceFloor, traveler: str, step: str, label: str, value: str) -> int:
    """Statements of delivering one value in a batch, as a station's sender does."""
    trav = floor.service.traveler(traveler)
    action = floor.proven(floor.record("ana", trav, step, label, value))
    action = action.model_copy(update={"station_time": datetime.now(UTC)})
    batch = ActionBatch(actions=(QueuedAction(key=new_key(), station_seq=1, action=action),))
    with statements(floor.service) as seen:
        (outcome,) = floor.service.perform_batch(floor.station, batch).outcomes
    assert outcome.status == 200, outcome
    return len(seen)


def test_recording_a_value_costs_the_same_on_6_and_1000_steps(service: ExecutionService) -> None:
    long_traveler(service, 1000)
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    floor.do(floor.start("ben", service.traveler("TRV-LONG"), "10.1"))  # one step per person
    short = record_once(floor, "TRV-1001", "10.1", "Kit complete per pick list", "ack")
    long = record_once(floor, "TRV-LONG", "10.1", "Note", "first")
    assert short == long


def test_recording_costs_the_same_after_1000_values_on_the_item(service: ExecutionService) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    record_once(floor, "TRV-LONG", "10.1", "Note", "note 0")
    first = record_once(floor, "TRV-LONG", "10.1", "Note", "note 1")  # with one value before it
    item = step_of(trav, "10.1").items[0]
    for start in range(0, 1000, 100):
        values = [
            QueuedAction(
                key=new_key(),
                station_seq=start + n + 2,
                action=floor.proven(
                    RecordValue(
                        actor_id=floor.ids["ana"],
                        traveler="TRV-LONG",
                        item_id=item.id,
                        value=f"note {start + n}",
                        station_time=datetime.now(UTC),
                    )
                ),
            )  # fmt: skip
            for n in range(100)
        ]
        service.perform_batch(floor.station, ActionBatch(actions=tuple(values)))
    assert record_once(floor, "TRV-LONG", "10.1", "Note", "note 1002") == first


@contextmanager
def commits(service: ExecutionService) -> Iterator[list[int]]:
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(service.store.engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(service.store.engine, "commit", count)


def values_batch(
    floor: ServiceFloor, item_id: int, first_seq: int, size: int, values: list[str] | None = None
) -> ActionBatch:
    """`size` values on the item (`values`, or note 1, note 2, …), as a station delivers them."""
    return ActionBatch(
        actions=tuple(
            QueuedAction(
                key=new_key(),
                station_seq=first_seq + n,
                action=floor.proven(
                    RecordValue(
                        actor_id=floor.ids["ana"],
                        traveler="TRV-LONG",
                        item_id=item_id,
                        value=values[n] if values else f"note {first_seq + n}",
                        station_time=datetime.now(UTC),
                    )
                ),
            )  # fmt: skip
            for n in range(size)
        )
    )


def test_a_delivered_batch_of_100_values_costs_one_commit(service: ExecutionService) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    batch = values_batch(floor, item.id, 1, 100)
    with commits(service) as seen:
        outcomes = service.perform_batch(floor.station, batch).outcomes
    assert [o.status for o in outcomes] == [200] * 100
    assert len(seen) == 1
    assert service.traveler("TRV-LONG").steps[0].items[0].latest.value == "note 100"  # type: ignore[union-attr]


@contextmanager
def committer_held(service: ExecutionService) -> Iterator[None]:
    """Another transaction has the group commit's committer until the block ends; then it
    commits, and whatever queued behind it meanwhile goes in the next group."""
    first_in, release = threading.Event(), threading.Event()

    def holding(conn: Any) -> str:
        first_in.set()
        release.wait(10)
        return "first"

    first = threading.Thread(target=service.group.run, args=(holding,))
    first.start()
    assert first_in.wait(10)
    try:
        yield
    finally:
        release.set()
        first.join(20)


@contextmanager
def queued_behind_a_commit(
    service: ExecutionService, deliveries: Sequence[Callable[[], None]]
) -> Iterator[None]:
    """`deliveries` started on threads of their own while another transaction has the group
    commit's turn, and queued behind it one after another, in their order; that transaction
    commits as the block ends, and the deliveries are waited for."""
    others: list[threading.Thread] = []
    try:
        with committer_held(service):
            for queued, delivery in enumerate(deliveries, 1):
                others.append(threading.Thread(target=delivery))
                others[-1].start()
                deadline = time.monotonic() + 10
                while len(service.group._queued) < queued:  # each waits behind the first
                    assert time.monotonic() < deadline, "a delivery never reached the group commit"
                    time.sleep(0.01)
            yield
    finally:
        for thread in others:
            thread.join(20)


def test_batches_delivered_at_once_share_one_commit_and_a_failure_stays_its_own(
    service: ExecutionService,
) -> None:
    """Three stations' deliveries queued while another commits go into the next transaction
    together; the one whose station token is refused changes nothing and is told so."""
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    token = service.local_station_token("DEMO-01", "ASSEMBLY")  # its token, as a request has it
    answers: dict[str, Any] = {}

    def deliver(name: str, who: Any, seq: int) -> None:
        try:
            answers[name] = service.perform_batch(who, values_batch(floor, item.id, seq, 2))
        except Refusal as refusal:
            answers[name] = refusal

    deliveries = [
        partial(deliver, "a", floor.station, 1),
        partial(deliver, "b", Presented("not-a-station-token"), 3),
        partial(deliver, "c", Presented(token), 5),
    ]
    with commits(service) as seen, queued_behind_a_commit(service, deliveries):
        pass
    assert len(seen) == 2  # the first transaction, then one for the three behind it
    assert [o.status for o in answers["a"].outcomes] == [200, 200]
    assert [o.status for o in answers["c"].outcomes] == [200, 200]
    assert isinstance(answers["b"], Refusal) and answers["b"].status == 401
    latest = service.traveler("TRV-LONG").steps[0].items[0].latest
    assert latest is not None and latest.value in ("note 2", "note 6")


def test_a_batch_of_values_writes_its_answers_once_reads_its_traveler_and_step_once(
    service: ExecutionService,
) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    batch = values_batch(floor, step_of(trav, "10.1").items[0].id, 1, 10)
    with statements(service) as seen:
        service.perform_batch(floor.station, batch)
    assert len([s for s in seen if s.startswith("INSERT INTO idempotency")]) == 1
    assert len([s for s in seen if s.startswith("SELECT travelers.")]) == 1
    assert len([s for s in seen if s.startswith("SELECT steps.")]) == 1
    assert not [s for s in seen if "SAVEPOINT" in s]  # it was all applied: none was needed


def test_each_value_in_a_batch_meets_the_one_before_it(service: ExecutionService) -> None:
    """The step's view a batch keeps between its values is the one each value left: a bore out
    of tolerance, then measured again until it passes, still needs an NCR; and each value's
    audit record names the value it replaced, as if each had been sent alone."""
    floor, trav = ana_on_a_long_traveler(service, BORE)
    item = step_of(trav, "10.1").items[0]
    readings = ["12.750", "12.700", "12.705"]
    batch = values_batch(floor, item.id, 1, 3, readings)
    assert [o.status for o in service.perform_batch(floor.station, batch).outcomes] == [200] * 3
    step = step_of(service.traveler("TRV-LONG"), "10.1")
    assert step.items[0].failed_before
    assert rules.outstanding(step) == ["Bore: out of tolerance, raise an NCR"]
    with service.store.read() as conn:
        ids = select(t.recorded_values.c.id).where(t.recorded_values.c.item_id == item.id)
        entities = [f"value:{n}" for n in conn.execute(ids).scalars()]
        trail = conn.execute(
            select(t.audit_log.c.old, t.audit_log.c.new)
            .where(t.audit_log.c.entity.in_(entities))
            .order_by(t.audit_log.c.seq)
        ).all()
    assert [json.loads(r.new)["value"] for r in trail] == readings
    assert [None if r.old is None else json.loads(r.old) for r in trail] == [None, *readings[:2]]


def test_a_key_twice_in_one_batch_is_applied_once(service: ExecutionService) -> None:
    """A station's outbox never sends one entry twice in a batch, but a server must not count
    on it: the second is answered what the first was, from the answers not yet written."""
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    (once,) = values_batch(floor, item.id, 1, 1).actions
    other = once.model_copy(update={"action": once.action.model_copy(update={"value": "else"})})
    outcomes = service.perform_batch(
        floor.station, ActionBatch(actions=(once, once, other))
    ).outcomes
    assert outcomes[0] == outcomes[1] and outcomes[0].status == 200
    assert outcomes[2].problem is not None and outcomes[2].problem.rule == "idempotency_key_reused"
    assert values_of(service, item.id) == ["note 1"]


def test_one_batch_through_two_server_processes_at_once_is_applied_once(
    plant: Plant, service: ExecutionService
) -> None:
    """A station that gave up waiting delivers its batch again, and a load balancer sends it to
    the other server process while the first still works on it. On PostgreSQL both apply it;
    the one that commits second meets the first's answers as it writes its own, and runs its
    transaction again: then it finds them and gives them, and nothing is applied twice."""
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    batch = values_batch(floor, item.id, 1, 20)
    other = plant.service()  # a second process: its own engine and its own group commit
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def deliver(through: ExecutionService) -> None:
        barrier.wait(10)
        answers.append(through.perform_batch(floor.station, batch).outcomes)

    try:
        threads = [threading.Thread(target=deliver, args=(s,)) for s in (service, other) * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.store.dispose()
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert [o.status for o in answers[0]] == [200] * 20
    assert values_of(service, item.id) == [f"note {n}" for n in range(1, 21)]


def test_a_refusal_in_a_batch_is_its_own_and_the_rest_is_recorded_once(
    service: ExecutionService,
) -> None:
    """The batch ran first without savepoints; the refusal rolled it all back, and it ran again
    with one for each action: the refused value leaves nothing, the others are there once, and
    the whole costs one commit."""
    floor, trav = ana_on_a_long_traveler(service)
    item, idle = step_of(trav, "10.1").items[0], step_of(trav, "10.2").items[0]
    records = audit_count(service)
    service.perform_batch(floor.station, values_batch(floor, item.id, 1, 1))
    per_value = audit_count(service) - records
    first, second = values_batch(floor, item.id, 2, 2).actions
    early = RecordValue(
        actor_id=floor.ids["ana"], traveler="TRV-LONG", item_id=idle.id, value="too early",
        station_time=datetime.now(UTC),
    )  # fmt: skip
    refused = QueuedAction(key=new_key(), station_seq=9, action=floor.proven(early))
    batch = ActionBatch(actions=(first, refused, second))
    records = audit_count(service)
    with commits(service) as seen:
        outcomes = service.perform_batch(floor.station, batch).outcomes
    assert len(seen) == 1
    assert [o.status for o in outcomes] == [200, 409, 200]
    assert outcomes[1].problem is not None and "10.2" in outcomes[1].problem.detail
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3"]
    assert values_of(service, idle.id) == []
    assert audit_count(service) - records == 2 * per_value
    assert service.perform_batch(floor.station, batch).outcomes == outcomes  # answered again
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3"]


def test_a_value_behind_a_stop_in_the_same_batch_meets_the_hold(service: ExecutionService) -> None:
    """The traveler's row kept for the values before it is not what the value after the stop
    is checked against: the stop placed a hold, and the value is refused for it."""
    floor, trav = ana_on_a_long_traveler(service)
    step = step_of(trav, "10.1")
    before, after = values_batch(floor, step.items[0].id, 1, 2).actions
    stop = RaiseAndon(
        actor_id=floor.ids["ana"], traveler="TRV-LONG", step_id=step.id, andon="stop",
        reason="Coolant on the floor",
    )  # fmt: skip
    stopping = QueuedAction(key=new_key(), station_seq=3, action=floor.proven(stop))
    batch = ActionBatch(actions=(before, stopping, after.model_copy(update={"station_seq": 4})))
    outcomes = service.perform_batch(floor.station, batch).outcomes
    assert [o.status for o in outcomes][:2] == [200, 200]
    assert outcomes[2].problem is not None and "hold" in outcomes[2].problem.detail.lower()
    assert values_of(service, step.items[0].id) == ["note 1"]


def three_on_three_travelers(service: ExecutionService) -> list[tuple[str, ActionBatch]]:
    """Ana, Ben and Ivy, each at a station of their own, each on step 10.1 of a one-step traveler
    of their own: each station's token, and a value on that step as the station delivers it."""
    spec = {
        "number": "WO-ABC", "part_number": "ABC-1", "part_name": "Three parts", "quantity": 3,
        "travelers": [{"number": n} for n in ("TRV-A", "TRV-B", "TRV-C")],
        "routing": [{"number": "10", "name": "All", "work_center": "ASSEMBLY", "steps": [
            {"number": "10.1", "title": "Note", "instructions": "Note it.", "items": [NOTE]}]}],
    }  # fmt: skip
    with service.store.begin() as conn:
        erp.load(conn, erp.PlantImport.model_validate({"work_orders": [spec]}))
    found = []
    for n, who in enumerate(["ana", "ben", "ivy"]):
        token = service.local_station_token(f"ST-0{n + 1}", "ASSEMBLY")
        floor = ServiceFloor(service, station_ref(service, f"ST-0{n + 1}"))
        trav = floor.do(floor.start(who, service.traveler(f"TRV-{'ABC'[n]}"), "10.1")).traveler
        value = RecordValue(
            actor_id=floor.ids[who],
            traveler=trav.number,
            item_id=step_of(trav, "10.1").items[0].id,
            value=f"by {who}",
            station_time=datetime.now(UTC),
        )
        queued = QueuedAction(key=new_key(), station_seq=1, action=floor.proven(value))
        found.append((token, ActionBatch(actions=(queued,))))
    return found


def test_deliveries_that_arrive_together_read_stations_sessions_and_travelers_once(
    service: ExecutionService,
) -> None:
    """Three stations' values, queued while another delivery commits, go in one transaction:
    it reads the three stations (by token), the three people's sessions, the three travelers
    and their steps in one statement each, not one each for every delivery, and applies all three."""
    three = three_on_three_travelers(service)
    answers: dict[str, Any] = {}

    def deliver(token: str, batch: ActionBatch) -> None:
        answers[batch.actions[0].action.traveler] = service.perform_batch(Presented(token), batch)

    with (
        statements(service) as seen,
        queued_behind_a_commit(service, [partial(deliver, *pair) for pair in three]),
    ):
        pass
    for number in ("TRV-A", "TRV-B", "TRV-C"):
        assert [o.status for o in answers[number].outcomes] == [200]
        assert service.traveler(number).steps[0].items[0].latest is not None
    reads = [s for s in seen if s.startswith("SELECT")]
    assert len([s for s in reads if "FROM stations" in s]) == 1
    assert len([s for s in reads if "FROM person_sessions" in s]) == 1
    assert len([s for s in reads if s.startswith("SELECT travelers.")]) == 1
    assert len([s for s in reads if s.startswith("SELECT steps.")]) == 1  # tests/test_read_ahead


def test_a_session_ended_before_the_group_is_refused_there_and_the_others_are_applied(
    service: ExecutionService,
) -> None:
    """Ben signed out at his station before his queued value reached the server: read ahead
    with the others' sessions, his still counts as ended. His value is refused, and the two
    values beside it in the group are applied."""
    (ana, ben, ivy) = three_on_three_travelers(service)
    session = ben[1].actions[0].action.session
    assert session is not None
    assert service.logout(station_ref(service, "ST-02"), SignOut(session=session)) == 1
    answers: dict[str, Any] = {}

    def deliver(token: str, batch: ActionBatch) -> None:
        answers[batch.actions[0].action.traveler] = service.perform_batch(Presented(token), batch)

    with queued_behind_a_commit(service, [partial(deliver, *pair) for pair in (ana, ben, ivy)]):
        pass
    (refused,) = answers["TRV-B"].outcomes
    assert refused.status == 403 and refused.problem is not None
    assert refused.problem.rule == "session_ended"
    assert service.traveler("TRV-B").steps[0].items[0].latest is None
    for number in ("TRV-A", "TRV-C"):
        assert [o.status for o in answers[number].outcomes] == [200]
        assert service.traveler(number).steps[0].items[0].latest is not None
