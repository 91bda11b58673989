"""Reads that scale: the queue comes in pages, filtered on the server, and a long traveler can be
fetched one operation or one range of steps at a time."""

from __future__ import annotations

import pytest

from kiosk.client import ExecutionClient, NotFound
from kiosk.server import erp
from kiosk.server.service import ExecutionService
from kiosk.wire import ItemKind, StepStatus
from tests.helpers import ServiceFloor


def many_travelers(service: ExecutionService, count: int) -> None:
    spec = {
        "number": "WO-MANY", "part_number": "M-7", "part_name": "Many part", "quantity": count,
        "travelers": [{"number": f"TRV-M{n:05d}", "serial": f"SN-M{n:05d}"} for n in range(count)],
        "routing": [{"number": "10", "name": "One", "work_center": "ASSEMBLY", "steps": [
            {"number": "10.1", "title": "Note", "instructions": "Note it.",
             "items": [{"label": "Note", "kind": ItemKind.TEXT.value}]},
            {"number": "10.2", "title": "Check", "instructions": "Check it.",
             "items": [{"label": "Check", "kind": ItemKind.PASS_FAIL.value}]}]}],
    }  # fmt: skip
    with service.store.begin() as conn:
        erp.load(conn, erp.PlantImport.model_validate({"work_orders": [spec]}))


async def test_the_queue_comes_in_pages_in_number_order(
    client: ExecutionClient, service: ExecutionService
) -> None:
    many_travelers(service, 250)
    first = await client.queue(limit=100)
    assert len(first) == 100
    numbers = [s.number for s in first]
    assert numbers == sorted(numbers)
    rest: list[str] = []
    after = numbers[-1]
    while page := await client.queue(after=after, limit=100):
        rest += [s.number for s in page]
        after = page[-1].number
    everything = numbers + rest
    assert len(everything) == len(set(everything)) == 250 + 5  # and the demo's five
    assert "TRV-M00249" in everything


async def test_the_queue_is_searched_on_the_server(
    client: ExecutionClient, service: ExecutionService
) -> None:
    many_travelers(service, 30)
    found = await client.queue(search="trv-m0001")
    assert [s.number for s in found] == [f"TRV-M{n:05d}" for n in range(10, 20)]
    assert [s.number for s in await client.queue(search="SN-M00007")] == ["TRV-M00007"]
    assert await client.queue(search="nothing-like-it") == []


async def test_a_traveler_moves_through_the_queue_as_its_steps_complete(
    client: ExecutionClient, service: ExecutionService
) -> None:
    floor = ServiceFloor(service)
    floor.work("ana", "TRV-1001", "10.1")
    (row,) = await client.queue(search="TRV-1001")
    assert row.current_step is not None and row.current_step.startswith("10.2 ")
    assert row.status.value == "in_work"


async def test_a_long_traveler_is_fetched_by_operation_or_by_step_range(
    client: ExecutionClient,
) -> None:
    whole = await client.traveler("TRV-2000")
    assert len(whole.steps) == 200
    op = await client.traveler("TRV-2000", operation="30")
    assert [s.number for s in op.steps] == [f"30.{n}" for n in range(1, 11)]
    assert [o.number for o in op.operations] == ["30"]
    span = await client.traveler("TRV-2000", first="10.9", last="20.2")
    assert [s.number for s in span.steps] == ["10.9", "10.10", "20.1", "20.2"]
    assert all(s.status is StepStatus.NOT_STARTED for s in span.steps)
    with pytest.raises(NotFound, match="Step 99.9"):
        await client.traveler("TRV-2000", first="99.9")
