"""The steps a group of deliveries reads ahead, in one statement for all of its values, are the
steps each value would read alone (kiosk.server.read_ahead, views.for_values): the same view,
so the same verdict, whatever the step's place against the traveler's current step, its hold,
or a value naming an item of another traveler."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kiosk import rules
from kiosk.server import views
from kiosk.server.service import ExecutionService
from kiosk.wire import ActionBatch, QueuedAction, RaiseAndon, RecordValue, Traveler
from tests.helpers import ServiceFloor, new_key, station_ref, step_of, values_of
from tests.test_constant_cost import (
    BORE,
    ana_on_a_long_traveler,
    queued_behind_a_commit,
    statements,
)


def value_on(trav: Traveler, step: str) -> RecordValue:
    return RecordValue(
        actor_id=1, traveler=trav.number, item_id=step_of(trav, step).items[0].id, value="x",
        station_time=datetime.now(UTC),
    )  # fmt: skip


def views_both_ways(
    service: ExecutionService, values: list[RecordValue]
) -> tuple[dict[str, Traveler], dict[str, Traveler]]:
    """The views of `values` (one a traveler) read all at once, and each read alone."""
    with service.store.begin() as conn:
        rows = views.traveler_rows_locked(conn, [v.traveler for v in values])
        together = views.for_values(conn, rows, {v.traveler: v.item_id for v in values})
        alone = {v.traveler: views.for_action(conn, rows[v.traveler], v) for v in values}
    return together, alone


def test_each_view_read_with_others_is_the_view_read_alone(service: ExecutionService) -> None:
    """TRV-1001 has its kit step signed: its current step is now 10.2. A value on 10.1 (behind
    the current step), on 10.2 (the current step) and on a later step (the current step, which
    the predecessor rule names, comes with it) is seen alike either way; so is TRV-LONG under a
    stop's hold, and TRV-1002 on its first step."""
    floor = ServiceFloor(service)
    kitted = floor.work("ana", "TRV-1001", "10.1").traveler
    long_floor, long = ana_on_a_long_traveler(service)
    stop = RaiseAndon(
        actor_id=long_floor.ids["ana"], traveler="TRV-LONG", step_id=step_of(long, "10.1").id,
        andon="stop", reason="Coolant on the floor",
    )  # fmt: skip
    held = long_floor.do(stop).traveler
    assert held.hold is not None
    fresh = service.traveler("TRV-1002")
    later = kitted.steps[-1].number
    for kit_step, long_step in [("10.1", "10.1"), ("10.2", "10.3"), (later, "10.6")]:
        values = [value_on(kitted, kit_step), value_on(held, long_step), value_on(fresh, "10.1")]
        together, alone = views_both_ways(service, values)
        assert together == alone
        assert [s.number for s in together["TRV-1001"].steps] == sorted(
            {kit_step, "10.2"} if kit_step != "10.1" else {"10.1"}
        )


def test_a_value_on_another_travelers_item_is_not_read_ahead(service: ExecutionService) -> None:
    """Its view is left to the value, which reads it alone and is refused for the item."""
    one, other = service.traveler("TRV-1001"), service.traveler("TRV-1002")
    astray = value_on(one, "10.1").model_copy(update={"traveler": other.number})
    together, alone = views_both_ways(service, [astray, value_on(one, "10.1")])
    assert "TRV-1002" not in together and "TRV-1002" in alone
    assert together["TRV-1001"] == alone["TRV-1001"]


def test_a_value_read_ahead_meets_the_value_before_it_in_the_group(
    service: ExecutionService,
) -> None:
    """Two stations on one traveler, both queued behind a commit: Ben's bore out of tolerance
    goes first, and Ana's good reading after it, checked against the view read ahead for both,
    still finds the failure there. The step still wants its NCR, as if each had come alone."""
    floor, trav = ana_on_a_long_traveler(service, BORE)
    item = step_of(trav, "10.1").items[0]
    service.local_station_token("ST-02", "ASSEMBLY")
    ben = ServiceFloor(service, station_ref(service, "ST-02"))
    ben.do(ben.start("ben", trav, "10.1"))  # Ben joins Ana on the step, at his own station

    def batch_of(on: ServiceFloor, who: str, value: str) -> ActionBatch:
        action = RecordValue(
            actor_id=on.ids[who], traveler="TRV-LONG", item_id=item.id, value=value,
            station_time=datetime.now(UTC),
        )  # fmt: skip
        queued = QueuedAction(key=new_key(), station_seq=1, action=on.proven(action))
        return ActionBatch(actions=(queued,))

    answers: list[Any] = []
    bad, good = batch_of(ben, "ben", "12.750"), batch_of(floor, "ana", "12.700")
    with (
        statements(service) as seen,
        queued_behind_a_commit(
            service,
            [
                lambda: answers.append(service.perform_batch(ben.station, bad)),
                lambda: answers.append(service.perform_batch(floor.station, good)),
            ],
        ),
    ):
        pass
    assert len([s for s in seen if s.startswith("SELECT steps.")]) == 1  # read ahead for both
    assert [o.status for a in answers for o in a.outcomes] == [200, 200]
    assert values_of(service, item.id) == ["12.750", "12.700"]
    step = step_of(service.traveler("TRV-LONG"), "10.1")
    assert step.items[0].failed_before
    assert rules.outstanding(step) == ["Bore: out of tolerance, raise an NCR"]
