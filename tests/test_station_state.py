"""Station state in one place, and the walk-through problems it fixed.

The link against the real server over loopback (the sender answers whoever waits for an entry,
the answer is applied to the traveler shown), then the app under Pilot: one connection status for
every status bar, a session that keeps drafts as they are typed, scans delivered to screens as
messages (a badge mid-step changes who works and keeps the traveler), an expired tool said at once,
and what a crash left in the outbox shown as not sent yet after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.message import Message
from textual.pilot import Pilot
from textual.screen import Screen

from kiosk.client import ExecutionClient
from kiosk.client.link import PersonSession, StationLink
from kiosk.client.projection import CONFIRMED_ID, is_pending
from kiosk.client.sender import Sender
from kiosk.messages import Scanned
from kiosk.screens.prompt import ChoiceScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.server.service import ExecutionService
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.widgets.status_bar import StatusBar
from kiosk.wire import DataItem, RecordValue, StartStep, Traveler
from tests.conftest import LiveServer, free_port
from tests.helpers import item_of, step_of
from tests.station import burst, make_app, running, settle, work_on
from tests.station_helpers import message, stoppable_server, text_of, type_in
from tests.test_station_flows import raise_torque_ncr

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def counted(target: object, name: str) -> list[int]:
    """Count the calls of `target.name` (still made for real); returns the counter."""
    calls: list[int] = []
    real = getattr(target, name)

    async def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return await real(*args, **kwargs)

    setattr(target, name, counting)
    return calls


@pytest.fixture
async def link(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[StationLink]:
    client = ExecutionClient(live_server.url, live_server.token(), timeout=5.0)
    station = StationLink(client, tmp_path)
    await station.station()
    station.start()
    yield station
    await station.close()


async def started(
    link: StationLink, number: str, badge: str = "10001"
) -> tuple[PersonSession, Traveler]:
    ana = await link.login(badge)
    trav = await link.traveler(number)
    step = trav.steps[0]
    done = await link.record(
        StartStep(actor_id=ana.person.id, traveler=number, step_id=step.id), ana, trav
    )
    return ana, done.traveler


def item(trav: Traveler, label: str) -> DataItem:
    return next(i for s in trav.steps for i in s.items if i.label == label)


# --- the sender answers the waiting screen; the answer is applied to the traveler shown -------------


async def test_an_online_value_is_answered_by_the_server_and_applied_without_a_fetch(
    link: StationLink, live_server: LiveServer
) -> None:
    ana, trav = await started(link, "TRV-1001")
    fetches = counted(link.client, "traveler")
    lot = item(trav, "Bracket forging lot")
    action = RecordValue(
        actor_id=ana.person.id, traveler=trav.number, item_id=lot.id, value="lot-a100"
    )
    done = await link.record(action, ana, trav)
    assert done.delivered and done.entry.state == "applied"
    assert done.message == "Bracket forging lot: LOT-A100 recorded."  # the server's own words
    shown = item(done.traveler, "Bracket forging lot").latest
    assert shown is not None and shown.value == "LOT-A100" and shown.id == CONFIRMED_ID
    assert fetches == []  # applied to the traveler on screen, not fetched again
    on_server = item_of(step_of(live_server.service.traveler("TRV-1001"), "10.1"), lot.label)
    assert on_server.latest is not None and on_server.latest.value == "LOT-A100"
    # Reopened later (offline, from the cache), the answer is there and is not pending.
    cached = link.reads.get("traveler:TRV-1001", Traveler)
    assert cached is not None and item(cached, lot.label).latest is not None


async def test_an_answer_after_one_delivered_unseen_reads_the_traveler_again(
    link: StationLink,
) -> None:
    ana, trav = await started(link, "TRV-1001")
    lot, kit = item(trav, "Bracket forging lot"), item(trav, "Kit complete per pick list")
    # Queued and delivered behind the screen's back (a supervisor's re-do, say): the traveler
    # on screen does not have it, so the next answer cannot simply be applied to it.
    behind = RecordValue(
        actor_id=ana.person.id, traveler=trav.number, item_id=lot.id, value="LOT-A100",
        session=ana.token,
    )  # fmt: skip
    link.outbox.record(behind, ana.person)
    await link.sender.deliver()
    fetches = counted(link.client, "traveler")
    action = RecordValue(actor_id=ana.person.id, traveler=trav.number, item_id=kit.id, value="ack")
    done = await link.record(action, ana, trav)
    assert done.delivered and fetches == [1]
    assert item(done.traveler, lot.label).latest is not None  # both, as the server has them
    assert item(done.traveler, kit.label).latest is not None


async def test_the_sender_hands_each_answer_to_whoever_waits_and_none_when_it_cannot_deliver(
    link: StationLink, live_server: LiveServer, tmp_path: Path
) -> None:
    ana, trav = await started(link, "TRV-1001")
    lot = item(trav, "Bracket forging lot")
    action = RecordValue(
        actor_id=ana.person.id, traveler=trav.number, item_id=lot.id, value="LOT-A100",
        session=ana.token,
    )  # fmt: skip
    entry = link.outbox.record(action, ana.person)
    answer = link.sender.answer(entry.key)
    link.sender.nudge()
    outcome = await asyncio.wait_for(answer, 5)
    assert outcome is not None and outcome.status < 400 and outcome.key == entry.key

    # A station whose server does not answer: the waiting caller is told at once, not after 3 s.
    closed = ExecutionClient(f"http://127.0.0.1:{free_port()}", live_server.token(), timeout=1)
    sender = Sender(link.outbox, closed)
    again = link.outbox.record(action.model_copy(update={"value": "LOT-A101"}), ana.person)
    waiting = sender.answer(again.key)
    await sender.deliver()
    assert waiting.done() and waiting.result() is None
    assert sender.online is False and link.outbox.get(again.seq).state == "pending"
    await closed.aclose()


# --- walk-through: an expired tool while online ----------------------------------------------------


async def test_an_expired_tool_online_is_refused_at_once_and_nothing_is_queued(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1002")  # 20.1 needs a torque wrench
        before = app.link.outbox.counts()
        await burst(pilot, "TL-0002")  # calibration ran out 30 days ago
        said = message(app)
        assert "TL-0002 is out of calibration since" in said and "for a supervisor" not in said
        await burst(pilot, "TL-9999")
        assert "TL-9999 is not in the tool crib register." in message(app)
        assert app.link.outbox.counts() == before  # no refused entry for a supervisor to clear
        bar = text_of(app.screen.query_one(StatusBar))
        assert "refused" not in bar
        await burst(pilot, "TL-0001")  # a calibrated one records as before
        wrench = item_of(step_of(live_server.service.traveler("TRV-1002"), "20.1"), "Torque wrench")
        assert wrench.latest is not None and wrench.latest.value == "TL-0001"


# --- walk-through: a badge mid-step keeps the traveler -------------------------------------------


async def test_sam_badging_in_mid_step_takes_over_on_the_traveler_and_ana_keeps_her_draft(
    live_server: LiveServer, tmp_path: Path
) -> None:
    raise_torque_ncr(live_server.service)  # Ana found 15 Nm on TRV-1002 20.1 and raised an NCR
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1002")
        traveler = app.screen
        assert isinstance(traveler, TravelerScreen)

        await burst(pilot, "30001")  # Sam Patel (quality) arrives to disposition it
        assert app.screen is traveler and app.person is not None
        assert app.person.name == "Sam Patel"
        assert "Signed in: Sam Patel." in message(app)
        assert "Sam Patel (supervisor" in text_of(traveler.query_one(StatusBar))
        await pilot.press("f8")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)  # the disposition is offered to Sam, here
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is traveler


async def test_the_newcomer_mid_step_does_not_see_the_last_persons_typing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await work_on(pilot, "TRV-1001")
        traveler = app.screen
        assert isinstance(traveler, TravelerScreen)
        await type_in(pilot, "LOT-A1")  # typed, not entered: the session has it already
        step = traveler.step
        assert step is not None
        lot = next(i for i in step.items if i.label == "Bracket forging lot")
        assert app.state.drafts_for(step) == {lot.id: "LOT-A1"}

        await burst(pilot, "10002")  # Ben takes over on the same traveler
        assert app.person is not None and app.person.name == "Ben Okafor"
        assert lot_field(traveler) == "" and on_top(app, traveler)
        await burst(pilot, "10001")  # Ana is back: her typing is where she left it
        assert lot_field(traveler) == "LOT-A1" and on_top(app, traveler)


def on_top(app: App[int], screen: Screen[None]) -> bool:
    return app.screen is screen


def lot_field(screen: TravelerScreen) -> str:
    return next(
        e for e in screen.query(DataItemEntry) if e.item.label == "Bracket forging lot"
    ).value


# --- one connection status; scans as messages ---------------------------------------------------------


async def test_every_status_bar_follows_the_one_connection_status(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        await burst(pilot, "10001")
        assert "● ONLINE" in text_of(app.screen.query_one(StatusBar))
        app.link.connection.went(False)  # what a failed read or delivery does
        await settle(pilot)
        assert app.online is False
        bars = [b for s in app.screen_stack for b in s.query(StatusBar)]
        assert len(bars) >= 2 and all("✘ OFFLINE" in text_of(b) for b in bars)
        await burst(pilot, "TRV-1001")  # the read answers: every bar, old and new, says so
        bars = [b for s in app.screen_stack for b in s.query(StatusBar)]
        assert len(bars) >= 3 and all("● ONLINE" in text_of(b) for b in bars)


async def test_scans_reach_screens_as_messages_that_never_show_a_badge(
    live_server: LiveServer, tmp_path: Path
) -> None:
    seen: list[Message] = []
    app = make_app(live_server.url, live_server.token(), tmp_path)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        await burst(pilot, "10001")
        await burst(pilot, "TL-0001")  # on the queue: no step to put a tool on
        assert "Scanned tool TL-0001: open a traveler step first." in message(app)
    # Each message is seen by the screen and again by the app it bubbles to.
    scans = list({id(m): m for m in seen if isinstance(m, Scanned)}.values())
    assert [m.kind for m in scans][:2] == ["badge", "tool"]
    assert all("10001" not in repr(m) for m in scans)


# --- walk-through: after a crash, what the outbox kept is shown ------------------------------------


async def test_after_a_crash_kept_actions_show_as_not_sent_yet_and_are_named_at_sign_in(
    service: ExecutionService, tmp_path: Path
) -> None:
    with stoppable_server(service) as server:
        async with running(server.url, server.token(), tmp_path) as pilot:
            await work_on(pilot, "TRV-1001")
            server.stop()
            await burst(pilot, "LOT-A100")  # on disk in the outbox; then the station dies
        async with running(server.url, server.token(), tmp_path) as pilot:
            app = pilot.app
            await burst(pilot, "10001")
            assert "Kept from before the restart: 1 action on TRV-1001" in message(app)
            await burst(pilot, "TRV-1001")
            screen = app.screen
            assert isinstance(screen, TravelerScreen)
            shown = recorded(screen, "Bracket forging lot")
            assert shown.startswith("… LOT-A100 · Ana Ortiz") and "not sent yet" in shown
            latest = item(screen.traveler, "Bracket forging lot").latest
            assert latest is not None and is_pending(latest.id)

            server.start()
            app.check_health()
            await until(pilot, lambda: app.link.waiting() == 0)
            await pilot.press("f4")  # refresh: the server has it now
            await settle(pilot)
            assert recorded(screen, "Bracket forging lot") == "• LOT-A100 · Ana Ortiz"
            await burst(pilot, "10001")
            assert "Kept from before" not in message(app)  # said once


def recorded(screen: TravelerScreen, label: str) -> str:
    entry = next(e for e in screen.query(DataItemEntry) if e.item.label == label)
    return text_of(entry.query_one(".recorded"))


async def until(pilot: Pilot[int], done: Callable[[], bool], tries: int = 100) -> None:
    for _ in range(tries):
        await settle(pilot)
        if done():
            return
        await pilot.pause(0.05)
    raise AssertionError("never happened")
