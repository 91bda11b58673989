"""How a delivery waits for its group (kiosk.server.group_commit): a request on the event loop
waits without a thread of its own, a request given up still commits once and its retry is given
the stored answer, and the committer leaves no thread behind once the deliveries stop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from kiosk.server import group_commit
from kiosk.server.service import ExecutionService
from tests.helpers import step_of, values_of
from tests.test_constant_cost import (
    ana_on_a_long_traveler,
    commits,
    committer_held,
    values_batch,
)


async def queued(service: ExecutionService, count: int) -> None:
    """Until `count` deliveries wait behind the transaction that has the committer."""
    deadline = time.monotonic() + 10
    while len(service.group._queued) < count:
        assert time.monotonic() < deadline, "the deliveries never reached the group commit"
        await asyncio.sleep(0.01)


async def holding_the_committer(service: ExecutionService) -> tuple[Any, threading.Event]:
    """A job that has the committer, once this returns, until the event given back is set."""
    started, release = threading.Event(), threading.Event()

    def work(_conn: Any) -> str:
        started.set()
        release.wait(10)
        return "held"

    job = asyncio.create_task(service.group.run_async(work))
    assert await asyncio.to_thread(started.wait, 10)
    return job, release


async def test_deliveries_awaited_on_the_loop_share_one_commit_and_no_thread_each(
    service: ExecutionService,
) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    with commits(service) as seen:
        first, release = await holding_the_committer(service)
        threads = threading.active_count()
        deliveries = [
            asyncio.create_task(
                service.perform_batch_async(floor.station, values_batch(floor, item.id, n, 2))
            )
            for n in (1, 3, 5)
        ]
        await queued(service, 3)
        assert threading.active_count() <= threads  # three requests wait, no thread for them
        release.set()
        answers = await asyncio.gather(*deliveries)
        assert await first == "held"
    assert len(seen) == 2  # the holding job's, then one for the three behind it
    assert [o.status for a in answers for o in a.outcomes] == [200] * 6
    assert sorted(values_of(service, item.id)) == sorted(f"note {n}" for n in range(1, 7))


async def test_a_delivery_given_up_commits_once_and_its_retry_is_given_the_answer(
    service: ExecutionService,
) -> None:
    """The station hangs up while its batch waits: the batch still commits, and the same batch
    sent again is answered from what was stored, with nothing recorded twice."""
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    batch = values_batch(floor, item.id, 1, 3)
    first, release = await holding_the_committer(service)
    given_up = asyncio.create_task(service.perform_batch_async(floor.station, batch))
    await queued(service, 1)
    given_up.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await given_up
    await first
    again = await service.perform_batch_async(floor.station, batch)
    assert [o.status for o in again.outcomes] == [200] * 3
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3"]


def test_the_committer_ends_once_nothing_is_queued(
    service: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's many services (a test run's, an upgrade's) leave no thread each: the committer
    waits IDLE_S for the next delivery, then ends; the next delivery starts another."""
    monkeypatch.setattr(group_commit, "IDLE_S", 0.05)
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]

    def committers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "group-commit" and t.is_alive()]

    for first in (1, 3):
        service.perform_batch(floor.station, values_batch(floor, item.id, first, 2))
        deadline = time.monotonic() + 5  # other services' committers may still be waiting 1 s
        while committers():
            assert time.monotonic() < deadline, "the committer never ended"
            time.sleep(0.02)
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3", "note 4"]


def test_a_loop_closed_while_its_delivery_waits_stops_nothing(service: ExecutionService) -> None:
    """A server stopping closes its event loop with a delivery still queued: that delivery
    commits, nobody is left to tell, and the next delivery is committed as ever."""
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]

    async def deliver_and_stop() -> None:
        asyncio.create_task(
            service.perform_batch_async(floor.station, values_batch(floor, item.id, 1, 3))
        )
        await queued(service, 1)

    with committer_held(service):
        asyncio.run(deliver_and_stop())  # the loop is closed here, its delivery still queued
    answers: list[Any] = []
    after = threading.Thread(
        target=lambda: answers.append(
            service.perform_batch(floor.station, values_batch(floor, item.id, 4, 1))
        )
    )
    after.start()
    after.join(10)
    assert not after.is_alive(), "the delivery after the closed loop was never committed"
    assert [o.status for o in answers[0].outcomes] == [200]
    assert values_of(service, item.id) == ["note 1", "note 2", "note 3", "note 4"]
